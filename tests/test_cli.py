"""The CLI end to end: run folders, saved configs, test reports, checkpoint aliases, clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer

from imgcls.commands import main
from tests.conftest import REPO

CONFIG = str(REPO / "configs" / "eurosat_sample.yaml")
TINY = [
    "--model.backbone=test_resnet",
    "--trainer.accelerator=cpu",
    "--data.init_args.num_workers=0",
    "--data.init_args.batch_size=8",
    "--data.init_args.image_size=32",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=2",
]


@pytest.fixture
def cli_args(eurosat_root: Path, tmp_path: Path) -> list[str]:
    return ["--config", CONFIG, f"--runs_dir={tmp_path}", f"--data.init_args.root={eurosat_root}", *TINY]


def run_error(args: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def trained_run(cli_args: list[str], tmp_path: Path) -> Path:
    main(["fit", *cli_args, "--trainer.max_epochs=2"])
    return tmp_path / "eurosat_sample" / "version_0"


def test_fit_writes_run_folder_and_test_writes_reports(trained_run: Path, cli_args: list[str]) -> None:
    assert sorted(p.name for p in (trained_run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["model"]["backbone"] == "test_resnet"
    hparams = yaml.safe_load((trained_run / "hparams.yaml").read_text())
    assert hparams["num_classes"] == 10 and hparams["class_names"][0] == "AnnualCrop"  # linked from the data
    assert any(p.name.startswith("events.out.tfevents") for p in trained_run.iterdir())

    main(["test", *cli_args, "--ckpt_path=best"])
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert {"test_loss", "test_acc", "test_acc_macro"} <= set(metrics)
    assert 0 <= metrics["test_acc"] <= 1 and metrics["test_samples"] == 20
    assert metrics["checkpoint"].endswith("best.ckpt")
    with (trained_run / "classification_report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows][:2] == ["AnnualCrop", "Forest"]
    assert [r["class"] for r in rows][-2:] == ["macro avg", "weighted avg"]
    assert sum(int(r["support"]) for r in rows[:10]) == 20
    with (trained_run / "confusion_matrix.csv").open() as f:
        matrix = list(csv.reader(f))
    assert matrix[0][1:] == [r["class"] for r in rows[:10]]
    assert sum(int(v) for row in matrix[1:] for v in row[1:]) == 20
    assert (trained_run / "config.yaml").is_file() and (trained_run / "config_test.yaml").is_file()
    # another checkpoint of the run reports beside the best one's, not over it
    main(["test", *cli_args, "--ckpt_path=last"])
    assert json.loads((trained_run / "test-last" / "metrics.json").read_text())["checkpoint"].endswith(
        "last.ckpt"
    )
    assert json.loads((trained_run / "metrics.json").read_text())["checkpoint"].endswith("best.ckpt")


def test_test_time_augmentation_of_a_checkpoint_reports_beside_the_plain_report(
    trained_run: Path, cli_args: list[str]
) -> None:
    main(["test", *cli_args, "--ckpt_path=best"])
    plain = json.loads((trained_run / "metrics.json").read_text())
    # the checkpoint's hyperparameters, which LightningCLI lays over the command line, must not undo it
    main(["test", *cli_args, "--ckpt_path=best", "--model.test_time_augmentation=dihedral"])
    tta = json.loads((trained_run / "test-tta-dihedral" / "metrics.json").read_text())
    assert tta["test_time_augmentation"] == "dihedral" and tta["test_samples"] == plain["test_samples"]
    assert tta["test_loss"] != plain["test_loss"]
    assert json.loads((trained_run / "metrics.json").read_text()) == plain
    main(["predict", *cli_args, "--ckpt_path=best", "--model.test_time_augmentation=hflip"])
    assert (trained_run / "predict-tta-hflip.csv").is_file()


def test_validate_and_predict_with_last(trained_run: Path, cli_args: list[str]) -> None:
    main(["validate", *cli_args, "--ckpt_path=last"])
    main(["predict", *cli_args, "--ckpt_path=last"])
    assert (trained_run / "config_validate.yaml").is_file() and (
        trained_run / "config_predict.yaml"
    ).is_file()


def test_resume_continues_in_the_same_run_folder(
    trained_run: Path, cli_args: list[str], tmp_path: Path
) -> None:
    main(["fit", *cli_args, "--trainer.max_epochs=3", "--ckpt_path=last"])
    assert not (tmp_path / "eurosat_sample" / "version_1").exists()
    assert (trained_run / "config.yaml").is_file() and (trained_run / "config_fit.yaml").is_file()


class RisingErrorProbe(Callback):
    """Logs ``val_err_probe`` = the epoch number: a monitored error that gets worse every epoch."""

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.log("val_err_probe", float(trainer.current_epoch))


def test_last_checkpoint_is_the_last_epoch_not_the_best(cli_args: list[str], tmp_path: Path) -> None:
    """Lightning 2.6's save_last would leave last.ckpt at the best epoch (0 here); resume needs the last."""
    probe = ["--model.monitor=val_err_probe", "--trainer.callbacks+=tests.test_cli.RisingErrorProbe"]
    main(["fit", *cli_args, *probe, "--trainer.max_epochs=3"])
    checkpoints = tmp_path / "eurosat_sample" / "version_0" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    best = torch.load(checkpoints / "best.ckpt", map_location="cpu", weights_only=False)
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert (best["epoch"], last["epoch"]) == (0, 2)
    assert last["global_step"] == 3 * 2  # limit_train_batches=2
    main(["fit", *cli_args, *probe, "--trainer.max_epochs=4", "--ckpt_path=last"])
    resumed = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert (resumed["epoch"], resumed["global_step"]) == (3, 4 * 2)


def test_print_config_shows_the_resolved_config(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(REPO / "configs" / "eurosat_resnet50.yaml"), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["backbone"] == "resnet50"
    assert printed["data"]["class_path"] == "imgcls.EuroSATDataModule"
    assert printed["trainer"]["callbacks"], "the shared trainer piece must be merged in"


def test_errors_are_one_line_and_keep_finished_runs(
    trained_run: Path, cli_args: list[str], capsys: pytest.CaptureFixture, fixture_roots: dict[str, Path]
) -> None:
    before = sorted(p.relative_to(trained_run) for p in trained_run.rglob("*"))
    err = run_error(["test", *cli_args, "--ckpt_path=/no/such.ckpt"], capsys)
    assert "does not exist" in err and "Traceback" not in err
    err = run_error(["fit", *cli_args, "--model.backbone=resnet5O"], capsys)
    assert "Closest valid names: resnet50" in err
    err = run_error(["fit", *cli_args, "--data.init_args.root=/no/such/folder"], capsys)
    assert "/no/such/folder" in err
    err = run_error(["test", *cli_args, "--experiment=never_ran", "--ckpt_path=best"], capsys)
    assert "Run `fit` with this config first" in err
    # a checkpoint for 10 classes evaluated on 3-class data
    other = [
        *cli_args,
        "--data=imgcls.ImageFolderDataModule",
        f"--data.init_args.root={fixture_roots['image_folder']}",
    ]
    err = run_error(["test", *other, f"--ckpt_path={trained_run / 'checkpoints' / 'best.ckpt'}"], capsys)
    assert "predicts 10 classes but the data has 3" in err
    after = sorted(p.relative_to(trained_run) for p in trained_run.rglob("*"))
    assert set(before) <= set(after)


def test_config_typo_suggests_the_key(
    cli_args: list[str], capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  lr_multiplier: 10\n")
    err = run_error(["fit", *cli_args, "--config", str(typo)], capsys)
    assert "unknown setting 'model.lr_multiplier' (did you mean model.head_lr_multiplier?)" in err


def test_max_steps_before_the_first_validation_is_refused_before_training(
    cli_args: list[str], capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    err = run_error(["fit", *cli_args, "--trainer.max_steps=1", "--trainer.limit_train_batches=null"], capsys)
    assert "trainer.max_steps 1 ends the fit before its first validation" in err
    assert "--trainer.val_check_interval 1" in err
    # the advice works: validating within the run, the same max_steps trains and checkpoints
    main(
        [
            "fit",
            *cli_args,
            "--trainer.max_steps=1",
            "--trainer.limit_train_batches=null",
            "--trainer.val_check_interval=1",
        ]
    )
    assert list((tmp_path / "eurosat_sample").glob("version_*/checkpoints/best.ckpt"))


@pytest.mark.slow
def test_bundled_eurosat_sample_trains_far_above_chance(tmp_path: Path) -> None:
    """The README's quick start, for real: ResNet-18 on 1,000 bundled EuroSAT images."""
    args = ["--config", CONFIG, f"--runs_dir={tmp_path}"]
    main(["fit", *args])
    main(["test", *args, "--ckpt_path=best"])
    metrics = json.loads((tmp_path / "eurosat_sample" / "version_0" / "metrics.json").read_text())
    assert metrics["test_acc"] > 0.5, metrics  # chance is 0.10


@pytest.mark.parametrize(
    ("config", "pieces", "expected"),
    [
        ("cifar10_scratch", [], "cifar10_scratch"),
        (
            "cifar10_scratch",
            [
                "--model",
                "configs/base/models/resnet50.yaml",
                "--model.optimizer",
                "configs/base/optim/adam.yaml",
            ],
            "cifar10_scratch-resnet50-adam",
        ),
        ("cnn64_mnist", ["--model", "configs/base/models/vgg16.yaml"], "cnn64_mnist-vgg16"),
    ],
)
def test_variants_get_their_own_run_folder(config: str, pieces: list[str], expected: str) -> None:
    from imgcls.commands.lightning import ImgclsCLI

    seen = []

    class Probe(ImgclsCLI):
        def before_instantiate_classes(self) -> None:
            seen.append(self.experiment_dir.name)
            raise SystemExit(0)

    with pytest.raises(SystemExit):
        Probe(
            args=[
                "fit",
                "--config",
                str(REPO / "configs" / f"{config}.yaml"),
                *[str(REPO / p) if p.endswith(".yaml") else p for p in pieces],
            ]
        )
    assert seen == [expected]


def test_threads_sets_torch_threads_and_rejects_zero(
    cli_args: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from imgcls.commands.lightning import ImgclsCLI

    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    cli = ImgclsCLI(args=[*cli_args, "--threads=1"], run=False)
    assert cli.config["threads"] == 1 and calls == [1]
    err = run_error(["fit", *cli_args, "--threads=0"], capsys)
    assert "--threads must be 1 or more" in err


def test_the_model_summary_counts_flops_on_an_example_input(
    cli_args: list[str], capsys: pytest.CaptureFixture
) -> None:
    """Lightning's summary table runs the model's example input through the datamodule's batch hooks:
    without one its FLOPs column reads 0."""
    main(["fit", *cli_args, "--trainer.max_epochs=1"])
    total = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Total FLOPs")]
    assert len(total) == 1 and total[0].split(":")[1].strip() not in ("0", ""), total


@pytest.mark.parametrize("native", [True, False])
def test_bf16_falls_back_to_float32_where_the_cpu_would_emulate_it(
    cli_args: list[str], native: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import imgcls.precision
    from imgcls.commands.lightning import ImgclsCLI

    monkeypatch.setattr(imgcls.precision, "cpu_bf16_pays", lambda: native)
    cli = ImgclsCLI(args=[*cli_args, "--trainer.precision=bf16-mixed"], run=False)
    expected = "bf16-mixed" if native else "32-true"
    assert cli.trainer.precision == expected
    assert cli.config["trainer"]["precision"] == expected  # what the run folder's config.yaml records
    assert ("bf16 would be slower than float32" in caplog.text) is not native


@pytest.mark.parametrize(
    ("flags", "speedup", "pays"),
    [
        ("fpu sse2 avx2 avx512f avx512bw avx512vl", 2.0, False),  # AVX-512 emulates bf16 (oneDNN says yes)
        ("fpu avx2 avx512f avx512_bf16", 1.9, True),  # an EPYC's: the multiplies decide
        ("fpu avx2 avx512f avx512_bf16", 0.58, False),  # a Xeon's without AMX listed, as measured
        ("fpu avx2 amx_bf16 amx_tile", 0.5, True),
        ("fpu sse2 avx2", 2.0, False),
    ],
)
def test_whether_bf16_pays_is_read_from_the_cpu_flags_then_timed(
    flags: str, speedup: float, pays: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import imgcls.precision

    monkeypatch.setattr(imgcls.precision, "bf16_matmul_speedup", lambda: speedup)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    assert imgcls.precision.cpu_bf16_pays(cpuinfo) is pays


def test_matmul_rate_is_the_rate_of_a_timed_multiply() -> None:
    from imgcls.precision import bf16_matmul_speedup, matmul_rate

    rate = matmul_rate("float32", size=256, seconds=0.2)
    # a 256x256 multiply is 33.6 MFLOP: at least one ran, and no CPU does a petaflop
    assert 0.01 < rate < 1e6
    # emulated or native, bf16's rate is within three orders of float32's on any CPU
    assert 1e-3 < bf16_matmul_speedup(size=256, seconds=0.05) < 1e3
