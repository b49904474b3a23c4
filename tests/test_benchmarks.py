"""The recipe benchmarks run end to end on the fixture data (their figures are not asserted: timings and
accuracies of a few batches say nothing)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imgcls.commands import main
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def run_benchmark(module: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_recipes_compares_the_switches(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    out = run_benchmark(
        "benchmarks.bench_recipes",
        f"--root={fixture_roots['eurosat']}",
        "--variants=previous,ema+resize",
        "--workers=0",
        f"--runs-dir={tmp_path}",
        "--",
        "--model.backbone=test_resnet",
        "--trainer.max_epochs=3",
        "--trainer.limit_train_batches=2",
        "--progressive_resizing.full_size_epoch=2",
        "--data.init_args.batch_size=8",
    )
    assert "previous    test acc" in out and "ema+resize  fit time" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "eurosat_recipe_ema_resize",
        "eurosat_recipe_previous",
    ]


def test_bench_defaults_transfer_runs_both_sides(fixture_roots: dict[str, Path]) -> None:
    out = run_benchmark(
        "benchmarks.bench_defaults_transfer",
        "--dataset=fashion_mnist",
        f"--root={fixture_roots['fashion_mnist'] / 'FashionMNIST' / 'raw'}",
        "--epochs=2",  # one-cycle needs a few steps per phase
        "--batch-size=4",
        "--workers=0",
        "--max-per-class=5",
    )
    assert "test accuracy: plain" in out and "wall time ratio imgcls/plain" in out
    # the same images on both sides: 5 per class, less the 1 per class imgcls validates on
    assert "plain trained on 40 and tested on 20, imgcls 40 and 20" in out


def test_bench_defaults_transfer_checks_another_config_with_its_data_swapped(
    fixture_roots: dict[str, Path], tmp_path: Path
) -> None:
    run_benchmark(
        "benchmarks.bench_defaults_transfer",
        "--variant=imgcls",
        "--dataset=fashion_mnist",
        f"--root={fixture_roots['fashion_mnist'] / 'FashionMNIST' / 'raw'}",
        "--config=configs/eurosat_resnet50.yaml",
        "--backbone=test_resnet",
        "--epochs=1",
        "--batch-size=4",
        "--workers=0",
        "--max-per-class=5",
        f"--runs-dir={tmp_path}",
    )
    (run,) = (tmp_path / "eurosat_resnet50_fashion_mnist_max5").glob("version_*")
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["class_path"] == "imgcls.FashionMNISTDataModule"
    assert config["model"]["backbone"] == "test_resnet"
    assert config["early_stopping"]["patience"] == 10  # the main config's, not the recipe's 100


def test_bench_inference_runs_the_three_runtimes(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    args = ["--config", str(REPO / "configs" / "eurosat_sample.yaml"), f"--runs_dir={tmp_path}"]
    args += [f"--data.init_args.root={fixture_roots['eurosat']}", "--model.backbone=test_resnet"]
    args += ["--data.init_args.image_size=32", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
    main(["fit", *args])
    main(["test", *args, "--ckpt_path=best"])
    out = run_benchmark(
        "benchmarks.bench_inference",
        f"--ckpt={tmp_path / 'eurosat_sample' / 'version_0'}",
        "--repeats=2",
        "--warmup=1",
    )
    for runtime in ("eager", "torch.export", "onnxruntime"):
        assert f"    1  {runtime}" in out and f"   64  {runtime}" in out


def test_bench_time_to_accuracy_scores_each_epoch_of_both_recipes(
    fixture_roots: dict[str, Path], tmp_path: Path
) -> None:
    out = run_benchmark(
        "benchmarks.bench_time_to_accuracy",
        f"--root={fixture_roots['cifar10']}",
        "--variants=airbench,recipe",
        "--budget=60",
        f"--runs-dir={tmp_path}",
        "--",
        "--data.init_args.batch_size=8",
        "--data.init_args.num_workers=0",
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=4",  # one-cycle's warm-up needs 2 of the 8 steps (torch divides by zero at 1)
        "--trainer.precision=32-true",
    )
    assert "airbench   best" in out and "recipe     best" in out
    assert re.search(r"matrix-multiply ceiling .*: \d+ GFLOP/s bf16, \d+ GFLOP/s fp32", out)
    assert re.search(r"45 minutes at the bf16 ceiling: \d+\.\d\d PFLOP", out)
    # each fit's compute, against the ceiling of its own precision (32-true here: fp32)
    computed = re.findall(
        r"compute: (\d+\.\d+) GFLOP per training image, .* (\d+) GFLOP/s, (\d+)% of the fp32", out
    )
    assert len(computed) == 2 and all(
        float(per_image) > 0 and int(rate) > 0 for per_image, rate, _ in computed
    )
    for variant in ("airbench", "recipe"):
        scores = json.loads(
            next((tmp_path / f"time_to_accuracy_{variant}").glob("*/test_each_epoch.json")).read_text()
        )
        assert [e["epoch"] for e in scores["epochs"]] == list(range(len(scores["epochs"])))
        assert all(0 <= e["test_acc"] <= 1 and e["fit_s"] > 0 for e in scores["epochs"])
        counted = [e["train_images"] for e in scores["epochs"]]
        assert counted == [32 * (epoch + 1) for epoch in range(len(counted))]  # 4 batches of 8 per epoch
    # the last epoch's score is what `imgcls test` gives its last checkpoint (a batch normalised twice
    # scored 37% where the test said 91%)
    main(
        [
            "test",
            "--config",
            str(REPO / "configs" / "cifar10_airbench.yaml"),
            f"--runs_dir={tmp_path}",
            "--experiment=time_to_accuracy_airbench",
            f"--data.init_args.root={fixture_roots['cifar10']}",
            f"--data.init_args.cache_dir={tmp_path / 'cache'}",
            "--data.init_args.batch_size=8",
            "--trainer.precision=32-true",
            "--ckpt_path=last",
        ]
    )
    run = next((tmp_path / "time_to_accuracy_airbench").glob("version_*"))
    scores = json.loads((run / "test_each_epoch.json").read_text())
    tested = json.loads((run / "test-last" / "metrics.json").read_text())
    assert scores["epochs"][-1]["test_acc"] == pytest.approx(tested["test_acc"], abs=1e-6)
