"""imgcls.analysis: model summaries, run comparisons, seed groups, and clear errors for bad run folders."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from imgcls.analysis.compare import compare_runs, group_runs, write_comparison
from imgcls.analysis.runs import find_run_dirs, load_run, read_curves
from imgcls.commands import main
from imgcls.errors import ConfigError, DataError
from imgcls.models.summary import summarize_model
from imgcls.stats import mean_std_ci95, t_critical


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    from tests.test_reports import make_tiny_runs  # trains through the CLI: only the tests that need it

    return make_tiny_runs(tmp_path_factory.mktemp("tiny_runs"))


@pytest.fixture
def seeds(tiny_runs: dict[str, list[Path]]) -> list[Path]:
    return tiny_runs["tiny"]


def copy_run(run: Path, destination: Path) -> Path:
    shutil.copytree(run, destination, ignore=shutil.ignore_patterns("checkpoints"))
    return destination


def edit_json(path: Path, **values: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


# --- summary -------------------------------------------------------------------------------------


def test_summary_counts_what_a_hand_count_gives() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    summary = summarize_model(model, (3, 8, 8), batch_size=2)
    assert summary.total_params == summary.trainable_params == (3 * 8 * 9 + 8) + (512 * 10 + 10)
    # FlopCounterMode counts a multiply-add as two FLOPs: conv 2*Cin*Cout*k*k*H*W, linear 2*in*out
    assert summary.gflops == pytest.approx((2 * 3 * 8 * 9 * 64 + 2 * 512 * 10) / 1e9)
    assert summary.param_mb == pytest.approx(5354 * 4 / 2**20)
    # outputs of conv, flatten and linear for two images, twice (activations and their gradients)
    assert summary.forward_backward_mb == pytest.approx(2 * 2 * (512 + 512 + 10) * 4 / 2**20)
    assert summary.saved_activations_mb > 0
    assert [row["name"] for row in summary.layers] == ["0", "1", "2"]
    assert summary.layers[0]["output_shape"] == [2, 8, 8, 8]
    assert model.training  # measuring leaves the mode as it was


def test_summary_command_reads_a_run_folder(seeds: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    main(["summary", "--run", str(seeds[0]), "--format", "json", "--depth", "0"])
    summary = json.loads(capsys.readouterr().out)
    info = json.loads((seeds[0] / "run_info.json").read_text())
    assert summary["backbone"] == "test_resnet"
    assert summary["input_size"] == [3, 32, 32]
    assert summary["total_params"] == info["total_params"]
    assert summary["gflops"] == pytest.approx(info["gflops"])


def test_summary_command_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    main(["summary", "--model.backbone", "test_resnet", "--image-size", "32", "--model.num_classes", "4"])
    out = capsys.readouterr().out
    assert "| total parameters |" in out and "| GFLOPs per image (forward) |" in out
    assert "| backbone | ResNet |" in out


def test_summary_without_a_model_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", "--image-size", "32"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--model.backbone" in err


# --- statistics ----------------------------------------------------------------------------------


def test_t_interval() -> None:
    assert t_critical(1) == pytest.approx(12.706)
    assert t_critical(40) == pytest.approx(2.0211, abs=2e-4)
    assert t_critical(120) == pytest.approx(1.9799, abs=2e-4)
    mean, std, half = mean_std_ci95([1.0, 2.0, 3.0])
    assert (mean, std) == (2.0, 1.0)
    assert half == pytest.approx(4.303 / math.sqrt(3))
    assert math.isnan(mean_std_ci95([0.5])[2])


# --- reading runs and comparing them ---------------------------------------------------------------


def test_runs_are_found_and_read(seeds: list[Path]) -> None:
    assert find_run_dirs([seeds[0].parent]) == seeds
    assert find_run_dirs(seeds[0].parent.parent) == seeds
    run = load_run(seeds[0])
    assert run.has_test_results and run.dataset == "eurosat" and run.seed == 0
    curves = read_curves(run)
    assert curves["epoch"].tolist() == [0, 1]
    assert curves["val_loss"].notna().all()


def test_a_runs_folder_includes_the_runs_of_its_sweeps(tmp_path: Path) -> None:
    def run(*parts: str) -> Path:
        folder = tmp_path.joinpath(*parts, "version_0")
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text("seed_everything: 0\n")
        return folder

    single = run("resnet18_scratch")
    swept = [run("eurosat_transfer", "model=googlenet"), run("eurosat_transfer", "model=resnet50")]
    (tmp_path / "eurosat_transfer" / "logs").mkdir()
    (tmp_path / "eurosat_transfer" / "comparison").mkdir()
    assert find_run_dirs(tmp_path) == [*swept, single]


def test_compare_writes_tables_figures_and_seed_groups(seeds: list[Path], tmp_path: Path) -> None:
    written = write_comparison([seeds[0].parent], tmp_path, goal=0.85)
    for name in ("comparison.csv", "comparison.md", "groups.csv", "groups.md"):
        assert (tmp_path / name).is_file()
    for name in ("test_accuracy", "accuracy_vs_gflops", "val_curves"):
        assert written[name].stat().st_size > 0
    table = pd.read_csv(tmp_path / "comparison.csv")
    assert table["run"].tolist() == ["tiny/version_0", "tiny/version_1"]
    assert set(table["group"]) == {"tiny"}
    assert table["seed"].tolist() == [0, 1]
    for path, row in zip(seeds, table.itertuples(), strict=True):
        metrics = json.loads((path / "metrics.json").read_text())
        info = json.loads((path / "run_info.json").read_text())
        assert row.test_acc == pytest.approx(metrics["test_acc"])
        assert row.params == info["total_params"] and row.gflops == pytest.approx(info["gflops"])
        assert row.epochs == 2 and row.seconds_per_epoch > 0
        assert row.acc_per_gflop == pytest.approx(row.test_acc / row.gflops)
        assert 0 <= row.train_acc <= 1 and row.val_loss > 0
    groups = pd.read_csv(tmp_path / "groups.csv")
    assert groups["runs"].tolist() == [2]
    for path, row in zip(seeds, table.itertuples(), strict=True):
        epoch_seconds = json.loads((path / "run_info.json").read_text())["epoch_seconds"]
        assert row.fit_seconds == pytest.approx(sum(epoch_seconds.values()))
    std = table["test_loss"].std(ddof=1)
    assert groups["test_loss_std"].iloc[0] == pytest.approx(std)
    assert groups["test_loss_ci95"].iloc[0] == pytest.approx(12.706 * std / math.sqrt(2))
    markdown = (tmp_path / "comparison.md").read_text()
    assert markdown.startswith("| run | group | experiment | model | dataset |")


def test_runs_differing_in_more_than_seed_form_separate_groups(seeds: list[Path], tmp_path: Path) -> None:
    other = copy_run(seeds[0], tmp_path / "tiny_mlp" / "version_0")
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["model"]["head_hidden"] = [16]
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    table = compare_runs([*seeds, other])
    assert table["group"].tolist() == ["tiny", "tiny", "tiny_mlp"]
    assert group_runs(table)["runs"].tolist() == [2, 1]


def test_runs_of_one_name_from_two_folders_are_told_apart_by_their_folders(
    seeds: list[Path], tmp_path: Path
) -> None:
    first = copy_run(seeds[0], tmp_path / "gpu" / "b128" / "tiny" / "version_0")
    second = copy_run(seeds[0], tmp_path / "gpu" / "b256" / "tiny" / "version_0")
    table = compare_runs([first, second, seeds[1]])
    assert table["run"].tolist() == ["b128/tiny/version_0", "b256/tiny/version_0", "tiny/version_1"]


def test_groups_of_one_experiment_name_are_numbered_among_themselves(
    seeds: list[Path], tmp_path: Path
) -> None:
    def with_head(width: int, destination: Path) -> Path:
        run = copy_run(seeds[0], destination)
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["model"]["head_hidden"] = [width]
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        return run

    runs = [seeds[0], with_head(8, tmp_path / "zeta" / "version_0")]
    runs += [with_head(width, tmp_path / f"mlp{width}" / "tiny" / "version_0") for width in (16, 32)]
    assert compare_runs(runs)["group"].tolist() == ["tiny", "zeta", "tiny (2)", "tiny (3)"]


@pytest.mark.parametrize(
    ("ema", "own_group"), [({"decay": 0.998, "bn_batches": 16}, True), ({"decay": None}, False)]
)
def test_a_recipe_switch_that_is_on_makes_its_own_group(
    seeds: list[Path], tmp_path: Path, ema: dict, own_group: bool
) -> None:
    other = copy_run(seeds[1], tmp_path / "tiny_ema" / "version_0")
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["ema"] = ema
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    groups = compare_runs([seeds[0], other])["group"].tolist()
    assert (groups[0] != groups[1]) is own_group


def test_compare_shows_the_study_figure_beside_each_experiment(seeds: list[Path], tmp_path: Path) -> None:
    write_comparison([seeds[0].parent], tmp_path, figures=False, reference={"tiny": "71.27% (50 epochs)"})
    table = pd.read_csv(tmp_path / "comparison.csv")
    assert table.columns[table.columns.get_loc("test_acc") + 1] == "study"
    assert table["study"].tolist() == ["71.27% (50 epochs)"] * 2
    assert pd.read_csv(tmp_path / "groups.csv")["study"].tolist() == ["71.27% (50 epochs)"]


def test_compare_refuses_different_datasets(seeds: list[Path], tmp_path: Path) -> None:
    other = copy_run(seeds[0], tmp_path / "cifar" / "version_0")
    edit_json(other / "run_info.json", dataset="cifar10")
    with pytest.raises(ConfigError, match=r"different datasets.*--allow-mixed"):
        compare_runs([seeds[0], other])
    table = compare_runs([seeds[0], other], allow_mixed=True)
    assert table["dataset"].tolist() == ["eurosat", "cifar10"]
    assert table["group"].nunique() == 2  # never averaged across datasets


def test_compare_names_untested_runs(
    seeds: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    untested = copy_run(seeds[0], tmp_path / "untested" / "version_0")
    (untested / "metrics.json").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(seeds[0]), str(untested), "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "no test results" in err and str(untested) in err and "imgcls test" in err
    with pytest.raises(DataError, match="no test results"):
        load_run(untested).require_test_results()
    table = compare_runs([seeds[0], untested], skip_untested=True)
    assert table["run"].tolist() == ["tiny/version_0"]


def test_compare_command_prints_markdown(
    seeds: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["compare", str(seeds[0].parent), "--output", str(tmp_path), "--goal", "0.85", "--no-figures"])
    out = capsys.readouterr().out
    assert "| tiny/version_0 |" in out and "95% CI" in out
    assert not (tmp_path / "test_accuracy.png").exists()


@pytest.mark.parametrize("make", ["empty", "missing"])
def test_bad_folders_are_one_clear_error(make: str, tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    if make == "empty":
        folder.mkdir()
    with pytest.raises(ConfigError, match="holds no runs" if make == "empty" else "does not exist"):
        compare_runs([folder])


def test_plots_take_tables_from_run_folders(seeds: list[Path]) -> None:
    from imgcls import plots
    from imgcls.analysis.runs import read_class_distribution, read_confusion_matrix

    confusion = read_confusion_matrix(seeds[0])
    figure = plots.plot_confusion_matrix(confusion)
    assert figure.axes[0].get_xticklabels()[1].get_text() == "Forest"
    assert plots.plot_class_distribution(read_class_distribution(seeds[0])).axes
    images = plots.to_display_images(torch.zeros(2, 3, 4, 4), mean=[0.5] * 3, std=[0.25] * 3)
    assert images.shape == (2, 4, 4, 3) and images.max() == pytest.approx(0.5)
