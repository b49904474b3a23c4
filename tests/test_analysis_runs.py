"""Reading run folders written by hand in the layout of ``imgcls.runs``: the fit's curves only, the tested
epoch, damaged files, relocated runs, the command lines of ``summary``/``compare``, and import cost.

These runs need no training, so the tests hold whatever state the training CLI is in; ``make_run`` also
feeds ``tests/test_notebooks.py``.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from imgcls import runs as schema
from imgcls.analysis import runs as run_folders
from imgcls.analysis.compare import compare_runs, group_runs, to_markdown
from imgcls.analysis.runs import load_run, read_curves, read_examples
from imgcls.commands import main
from imgcls.commands.compare import compare_command, compare_parser
from imgcls.commands.summary import summary_command, summary_parser
from imgcls.errors import ConfigError, DataError
from tests.conftest import REPO

CLASSES = ["AnnualCrop", "Forest", "River"]
# the fit's validation accuracy per epoch: distinct, so that a value names the epoch it came from
VAL_ACC = (0.5, 0.7, 0.6)


def make_dataset(root: Path) -> Path:
    """Two 8x8 PNG images per class in class folders."""
    for i, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for k in range(2):
            pixels = np.full((8, 8, 3), 60 * i + 20 * k, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{k}.png")
    return root


def fit_csv_rows(val_acc: tuple[float, ...] = VAL_ACC) -> list[dict[str, object]]:
    """What Lightning's CSVLogger writes for a fit: a learning-rate row without epoch, step rows, then
    the validation and training epoch rows, several rows per epoch with most cells empty."""
    rows: list[dict[str, object]] = []
    for epoch, acc in enumerate(val_acc):
        first = 4 * epoch
        rows.append({"step": first, "lr-AdamW": 0.1 / (epoch + 1)})
        rows += [{"epoch": epoch, "step": first + k, "train_loss_step": 1.0 - 0.1 * k} for k in range(4)]
        f1 = {f"val_f1/{name}": acc - 0.01 * i for i, name in enumerate(CLASSES)}
        rows.append({"epoch": epoch, "step": first + 3, "val_acc": acc, "val_loss": 1 - acc, **f1})
        rows.append(
            {
                "epoch": epoch,
                "step": first + 3,
                "train_acc": acc + 0.1,
                "train_loss_epoch": 0.9 - acc,
                "train_epoch_sec": 1.5,
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def make_run(
    folder: Path,
    data_root: Path,
    *,
    seed: int = 0,
    tested_epoch: int | None = 1,
    test_acc: float = 0.8,
    config_root: str | None = None,
    runs_dir: str = "runs",
    sample_paths: str = "absolute",
) -> Path:
    """A tested run folder as ``fit`` and ``test`` leave it (no checkpoints).

    Args:
        folder: the run folder, ``<runs_dir>/<experiment>/version_N``.
        data_root: the dataset (``make_dataset``).
        seed: ``seed_everything`` of the config.
        tested_epoch: ``epoch`` of metrics.json; None for runs tested before it was recorded.
        test_acc: metrics.json's ``test_acc``.
        config_root: ``data.init_args.root`` of config.yaml (default: ``data_root``).
        runs_dir: ``runs_dir`` of config.yaml.
        sample_paths: ``absolute`` or ``launch`` (relative to the folder holding ``runs_dir``, as older
            runs wrote them) for predictions.csv's ``sample`` column.
    """
    folder.mkdir(parents=True)
    root = config_root or str(data_root)
    config = {
        "seed_everything": seed,
        "runs_dir": runs_dir,
        "experiment": folder.parent.name,
        "model": {"backbone": "test_resnet", "head_hidden": None},
        "data": {
            "class_path": "imgcls.data.EuroSATDataModule",
            "init_args": {"root": root, "image_size": 32, "seed": seed, "num_workers": 0},
        },
        "trainer": {"max_epochs": 3},
    }
    (folder / schema.CONFIG).write_text(yaml.safe_dump(config))
    hparams = {"backbone": "test_resnet", "num_classes": 3, "in_chans": 3, "class_names": CLASSES}
    (folder / schema.HPARAMS).write_text(yaml.safe_dump(hparams))
    info = {
        "backbone": "test_resnet",
        "dataset": "eurosat",
        "datamodule": "EuroSATDataModule",
        "class_names": CLASSES,
        "split_sizes": {"train": 0, "val": 0, "test": 6},
        "input_size": [3, 32, 32],
        "total_params": 1000,
        "gflops": 0.01,
        "epochs": 3,
        "seconds_per_epoch": 1.5,
        "final_epoch": 2,
        "final": {"val_acc": VAL_ACC[2], "val_loss": 1 - VAL_ACC[2]},
    }
    (folder / schema.RUN_INFO).write_text(json.dumps(info))
    write_csv(folder / schema.METRICS_CSV, fit_csv_rows())
    metrics = {"test_acc": test_acc, "test_loss": 0.5 + seed / 10, "test_samples": 6}
    metrics["data_root"] = str(data_root.resolve())
    if tested_epoch is not None:
        checkpoint = folder / schema.CHECKPOINTS / "best.ckpt"
        metrics.update(epoch=tested_epoch, global_step=4 * tested_epoch + 4, checkpoint=str(checkpoint))
    (folder / schema.TEST_METRICS).write_text(json.dumps(metrics))
    launch = folder.parents[1 + len(Path(runs_dir).parts)]
    rows = []
    for i, name in enumerate(CLASSES):
        for k in range(2):
            image = data_root.resolve() / name / f"{name}_{k}.png"
            sample = str(image) if sample_paths == "absolute" else str(Path(root) / name / image.name)
            predicted = CLASSES[i if k == 0 else (i + 1) % 3]
            rows.append(
                {
                    "sample": sample,
                    "index": 2 * i + k,
                    "true": name,
                    "predicted": predicted,
                    "probability": 0.9 - 0.1 * k,
                    "correct": predicted == name,
                }
            )
    assert sample_paths == "absolute" or (launch / rows[0]["sample"]).is_file()
    write_csv(folder / schema.PREDICTIONS, rows)
    counts = pd.DataFrame(np.eye(3, dtype=int) + 1, index=CLASSES, columns=CLASSES)
    counts.to_csv(folder / schema.CONFUSION_MATRIX, index_label="true")
    report = pd.DataFrame({"precision": [0.5] * 3, "recall": [0.5] * 3}, index=CLASSES)
    report.to_csv(folder / schema.CLASSIFICATION_REPORT, index_label="class")
    distribution = pd.DataFrame({"train": [4] * 3, "val": [2] * 3, "test": [2] * 3}, index=CLASSES)
    distribution.to_csv(folder / schema.CLASS_DISTRIBUTION, index_label="class")
    return folder


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data" / "eurosat")


@pytest.fixture
def seeds(tmp_path: Path, dataset: Path) -> list[Path]:
    """Two seeds of one experiment, tested at epoch 1 of 3."""
    return [make_run(tmp_path / "runs" / "tiny" / f"version_{s}", dataset, seed=s) for s in (0, 1)]


def write_events(folder: Path, scalars: dict[str, list[tuple[int, float]]], walltime: float) -> None:
    """A TensorBoard event file of its own in ``folder``: tag -> (step, value) points."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder), filename_suffix=f".{int(walltime)}")
    for tag, points in scalars.items():
        for step, value in points:
            writer.add_scalar(tag, value, step, walltime=walltime + step)
    writer.close()


def fit_events(val_acc: tuple[float, ...]) -> dict[str, list[tuple[int, float]]]:
    """The fit's scalars as Lightning's TensorBoardLogger wrote them: ``epoch`` at each epoch-level step."""
    steps = [4 * e + 3 for e in range(len(val_acc))]
    return {
        "epoch": [(s, float(e)) for e, s in enumerate(steps)],
        "val_acc": list(zip(steps, val_acc, strict=True)),
        "train_acc": [(s, acc + 0.1) for s, acc in zip(steps, val_acc, strict=True)],
    }


# --- 1. one schema -------------------------------------------------------------------------------


def test_analysis_takes_file_names_from_the_schema() -> None:
    assert run_folders.is_run_dir is schema.is_run_dir
    assert run_folders.RUN_MARKERS is schema.RUN_MARKERS
    names = {
        value
        for name, value in vars(schema).items()
        if name.isupper() and isinstance(value, str) and "." in value and "*" not in value
    }
    assert {"metrics.json", "run_info.json", "config.yaml", "metrics.csv"} <= names
    for path in sorted((REPO / "imgcls" / "analysis").glob("*.py")):
        literals = {
            node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)
        }
        assert not literals & names, f"{path.name} spells schema file names: {literals & names}"


def test_public_functions_of_imgcls_analysis() -> None:
    import imgcls.analysis as analysis

    for name in (
        "find_run_dirs",
        "load_run",
        "load_runs",
        "read_curves",
        "read_scalars",
        "read_table",
        "read_confusion_matrix",
        "read_class_distribution",
        "read_examples",
        "Run",
        "compare_runs",
        "group_runs",
        "to_markdown",
        "write_comparison",
        "validation_curves",
        "ModelSummary",
        "build_model",
        "summarize_model",
    ):
        assert callable(getattr(analysis, name)), name
    with pytest.raises(AttributeError):
        analysis.no_such_function  # noqa: B018


# --- 2. curves come from the fit only --------------------------------------------------------------


def test_curves_come_from_the_fits_metrics_csv(seeds: list[Path]) -> None:
    run = seeds[0]
    # an evaluation logs into a subfolder of its own, at the checkpoint's epoch
    write_csv(
        run / "validate" / schema.METRICS_CSV, [{"epoch": 0, "step": 3, "val_acc": 0.01, "val_loss": 9.0}]
    )
    write_events(run / "validate", {"epoch": [(3, 0.0)], "val_acc": [(3, 0.01)]}, walltime=2e9)
    # TensorBoard events of the fit, with other values: metrics.csv is read first
    write_events(run, fit_events((0.2, 0.2, 0.2)), walltime=1e9)
    curves = read_curves(run, ("val_acc", "val_loss", "train_acc", "lr-AdamW", "val_f1/Forest", "nothing"))
    assert curves["epoch"].tolist() == [0, 1, 2]
    assert curves["val_acc"].tolist() == pytest.approx(list(VAL_ACC))
    assert curves["train_acc"].tolist() == pytest.approx([a + 0.1 for a in VAL_ACC])
    # the learning rate logged without an epoch belongs to the epoch it was logged before
    assert curves["lr-AdamW"].tolist() == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert curves["val_f1/Forest"].tolist() == pytest.approx([a - 0.01 for a in VAL_ACC])
    assert curves["nothing"].isna().all()
    assert read_curves(load_run(run))["val_acc"].tolist() == pytest.approx(list(VAL_ACC))


def test_the_last_value_of_an_epoch_wins(seeds: list[Path]) -> None:
    run = seeds[0]
    # a fit resumed from epoch 1 logs epochs 1 and 2 again, below the first ones
    resumed = [row for row in fit_csv_rows((0.5, 0.75, 0.8)) if row.get("epoch", 1) != 0]
    write_csv(run / schema.METRICS_CSV, fit_csv_rows() + resumed)
    assert read_curves(run)["val_acc"].tolist() == pytest.approx([0.5, 0.75, 0.8])


def test_old_runs_read_curves_from_the_fits_event_files(tmp_path: Path) -> None:
    run = tmp_path / "old" / "version_0"
    run.mkdir(parents=True)
    (run / schema.HPARAMS).write_text(yaml.safe_dump({"backbone": "test_resnet"}))
    write_events(run, fit_events(VAL_ACC), walltime=1e9)
    # older validate/test wrote their own event file into the run folder, at step 0, later in time
    write_events(run, {"epoch": [(0, 0.0)], "val_acc": [(0, 0.01)], "val_loss": [(0, 9.0)]}, walltime=2e9)
    write_events(run / "validate", {"epoch": [(3, 0.0)], "val_acc": [(3, 0.02)]}, walltime=3e9)
    curves = read_curves(run, ("val_acc", "train_acc"))
    assert curves["epoch"].tolist() == [0, 1, 2]
    assert curves["val_acc"].tolist() == pytest.approx(list(VAL_ACC))
    assert curves["train_acc"].tolist() == pytest.approx([a + 0.1 for a in VAL_ACC])
    # every scalar of the run folder's event files (and none of its subfolders) stays readable
    scalars = load_run(run).scalars
    assert sorted(scalars.loc[scalars.tag == "val_acc", "value"].round(3)) == [0.01, 0.5, 0.6, 0.7]


# --- 3. which epoch each number is from ------------------------------------------------------------


def test_compare_says_which_epoch_train_and_val_columns_are_from(
    seeds: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = compare_runs(seeds)
    assert table["tested_epoch"].tolist() == [1, 1]
    assert table["val_acc"].tolist() == pytest.approx([VAL_ACC[1]] * 2)  # not the best, not the last
    assert table["train_acc"].tolist() == pytest.approx([VAL_ACC[1] + 0.1] * 2)
    assert table["epochs"].tolist() == [3, 3]
    out = tmp_path / "out"
    main(["compare", str(seeds[0].parent), "--output", str(out), "--no-figures"])
    printed = capsys.readouterr().out
    note = "train_* and val_* are from tested_epoch, the epoch of the tested checkpoint (0-based"
    for text in (printed, (out / "comparison.md").read_text()):
        assert note in text
    header = (out / "comparison.md").read_text().splitlines()[0]
    assert "| tested_epoch |" in header
    assert pd.read_csv(out / "comparison.csv")["tested_epoch"].tolist() == [1, 1]
    groups_md = (out / "groups.md").read_text()
    assert "tested_epochs" in groups_md.splitlines()[0] and "| 1, 1 |" in groups_md
    assert "train_* and val_* of each run are from its tested epoch" in groups_md
    assert "train_* and val_* of each run are from its tested epoch" in printed


def test_runs_tested_before_the_epoch_was_recorded_say_so(tmp_path: Path, dataset: Path) -> None:
    run = make_run(tmp_path / "runs" / "old" / "version_0", dataset, tested_epoch=None)
    table = compare_runs([run])
    assert pd.isna(table["tested_epoch"].iloc[0])
    assert table["val_acc"].iloc[0] == pytest.approx(VAL_ACC[-1])  # the last epoch's
    markdown = to_markdown(table.drop(columns="path"))
    assert (
        "Where tested_epoch is empty (tested before it was recorded), they are the last epoch's" in markdown
    )
    assert "<NA>" not in markdown
    assert "its train_* and val_* are its last epoch's" in to_markdown(group_runs(table))


# --- 4. damaged files ----------------------------------------------------------------------------

DAMAGE = {"empty": "", "truncated": '{"test_acc": 0.8, "test_lo'}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", [schema.TEST_METRICS, schema.RUN_INFO])
def test_a_damaged_json_file_is_named_with_the_fix(
    name: str, damage: str, seeds: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = seeds[1] / name
    bad.write_text(DAMAGE[damage])
    with pytest.raises(DataError) as error:
        compare_runs(seeds)
    message = str(error.value)
    assert f"{bad} is damaged (empty or cut short)" in message and "--skip-untested" in message
    assert ("imgcls test --config" in message) == (name == schema.TEST_METRICS)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", *map(str, seeds), "--output", str(tmp_path / "out"), "--no-figures"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("imgcls: error: ") and str(bad) in err[-1]
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", [schema.TEST_METRICS, schema.RUN_INFO])
def test_skip_untested_leaves_a_damaged_run_out(
    name: str, damage: str, seeds: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (seeds[1] / name).write_text(DAMAGE[damage])
    with caplog.at_level(logging.WARNING):
        table = compare_runs(seeds, skip_untested=True)
    assert table["run"].tolist() == ["tiny/version_0"]
    assert any(str(seeds[1] / name) in record.getMessage() for record in caplog.records)
    main(["compare", *map(str, seeds), "--output", str(tmp_path / "out"), "--no-figures", "--skip-untested"])
    assert pd.read_csv(tmp_path / "out" / "comparison.csv")["run"].tolist() == ["tiny/version_0"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (schema.CONFIG, "data: [unclosed\n"),
        (schema.HPARAMS, ""),
        (schema.METRICS_CSV, ""),
        (schema.TEST_METRICS, "[1, 2]"),
    ],
)
def test_other_damaged_files_are_data_errors(name: str, content: str, seeds: list[Path]) -> None:
    (seeds[0] / name).write_text(content)
    with pytest.raises(DataError, match=re.escape(f"{seeds[0] / name} is damaged")):
        compare_runs(seeds)
    assert compare_runs(seeds, skip_untested=True)["run"].tolist() == ["tiny/version_1"]


def test_every_run_damaged_is_one_error(seeds: list[Path]) -> None:
    for run in seeds:
        (run / schema.TEST_METRICS).write_text("")
    with pytest.raises(DataError, match="damaged"):
        compare_runs(seeds, skip_untested=True)


def test_damaged_reports_are_named(seeds: list[Path]) -> None:
    (seeds[0] / schema.PREDICTIONS).write_text("")
    with pytest.raises(
        DataError, match=re.escape(f"{seeds[0] / schema.PREDICTIONS} is damaged") + ".*imgcls test"
    ):
        read_examples(seeds[0])


# --- 5. summary and compare parse with jsonargparse -----------------------------------------------


def summary_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    main(["summary", *argv, "--format", "json", "--depth", "0"])
    return json.loads(capsys.readouterr().out)


def test_summary_takes_model_arguments_from_the_classifiers_signature(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"backbone": "test_resnet", "num_classes": 4, "head_hidden": [8]},
                "data": {"class_path": "imgcls.data.EuroSATDataModule", "init_args": {"image_size": 32}},
            }
        )
    )
    from_config = summary_json(["--config", str(config)], capsys)
    assert from_config["input_size"] == [3, 32, 32]
    plain = summary_json(
        ["--model.backbone", "test_resnet", "--model.num_classes", "4", "--image-size", "32"], capsys
    )
    head = summary_json(
        [
            "--model.backbone",
            "test_resnet",
            "--model.num_classes",
            "4",
            "--data.image_size",
            "32",
            "--model.head_hidden",
            "[8]",
        ],
        capsys,
    )
    # the config's values stand unless an option is given: defaults of the signature never clobber them
    assert from_config["total_params"] == head["total_params"] > plain["total_params"]
    override = summary_json(["--config", str(config), "--model.num_classes", "10"], capsys)
    assert override["total_params"] == head["total_params"] + 6 * 8 + 6  # 6 more outputs of the 8-wide layer
    # architecture arguments the hand-kept list lacked
    frozen = summary_json(["--config", str(config), "--model.freeze_backbone", "true"], capsys)
    assert frozen["trainable_params"] < frozen["total_params"]
    sized = summary_json(["--config", str(config), "--input-size", "1", "16", "16"], capsys)
    assert sized["input_size"] == [1, 16, 16]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--model.backbon", "test_resnet"],
            "unknown option --model.backbon (did you mean --model.backbone?)",
        ),
        (["--model.num_class", "4", "--model.backbone", "test_resnet"], "unknown option --model.num_class"),
        (["--model.backbone", "test_resnet", "--model.num_classes", "x"], "--model.num_classes expects int"),
        (
            ["--model.backbone", "test_resnet", "--format", "yaml"],
            "--format expects one of 'markdown', 'json'",
        ),
        (["--model.backbone", "test_resnet", "--model.optimizer", "SGD"], "unknown option --model.optimizer"),
    ],
)
def test_summary_options_errors_are_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="see `imgcls summary --help`"):
        summary_command(argv)
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", *argv])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and err.startswith("imgcls: error: ") and expected in err
    assert "usage:" not in captured.err + captured.out


def test_summary_takes_a_run_folder_as_its_argument(
    seeds: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert summary_json([str(seeds[0])], capsys) == summary_json(["--run", str(seeds[0])], capsys)
    with pytest.raises(ConfigError, match="two run folders given"):
        summary_command([str(seeds[0]), "--run", str(seeds[1])])


def test_compare_writes_beside_the_runs_by_default(
    seeds: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a user runs it: the folder that holds runs/
    written = compare_command([str(seeds[0]), "--no-figures"])
    assert written["comparison_md"] == Path("runs") / "comparison" / "comparison.md"
    assert written["comparison_md"].is_file() and not (tmp_path / "comparison").exists()


def test_compare_options(capsys: pytest.CaptureFixture[str], seeds: list[Path], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "95%" in text and "95%%" not in text and "--skip-untested" in text
    with pytest.raises(ConfigError, match=r"unknown option --skip-untest \(did you mean --skip-untested\?\)"):
        compare_command([str(seeds[0]), "--skip-untest"])
    with pytest.raises(ConfigError, match="--goal expects float"):
        compare_command([str(seeds[0]), "--goal", "high"])
    written = compare_command([str(seeds[0]), "--output", str(tmp_path), "--goal", "0.85"])
    assert written["test_accuracy"].is_file()


def test_commands_parse_with_jsonargparse() -> None:
    from jsonargparse import ArgumentParser

    assert isinstance(summary_parser(), ArgumentParser)
    assert isinstance(compare_parser(), ArgumentParser)
    for path in (REPO / "imgcls" / "commands").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "argparse" not in imported, path


# --- 6. relocatable run folders ------------------------------------------------------------------


def make_old_repo(repo: Path) -> list[Path]:
    """A repository whose runs were made and tested from its root with relative paths, as older runs
    were: ``data.init_args.root: samples/eurosat``, predictions.csv samples ``samples/eurosat/...``."""
    data = make_dataset(repo / "samples" / "eurosat")
    return [
        make_run(
            repo / "runs" / "tiny" / f"version_{s}",
            data,
            seed=s,
            config_root="samples/eurosat",
            sample_paths="launch",
        )
        for s in (0, 1)
    ]


def test_examples_of_relative_samples_are_found_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "moved" / "repo"
    runs = make_old_repo(repo)
    # the data root metrics.json recorded is gone: the repository moved since
    for run in runs:
        metrics = json.loads((run / schema.TEST_METRICS).read_text())
        (run / schema.TEST_METRICS).write_text(json.dumps({**metrics, "data_root": "/gone/samples/eurosat"}))
    monkeypatch.chdir(tmp_path)  # not the folder test ran in
    groups = read_examples(runs[0], num_examples=2)
    images, rows = groups["most confident correct"]
    assert len(images) == 2 and images[0].shape == (8, 8, 3)
    assert rows["sample"].iloc[0].startswith("samples/eurosat/")


def test_examples_of_samples_relative_to_the_data_root(seeds: list[Path], dataset: Path) -> None:
    table = pd.read_csv(seeds[0] / schema.PREDICTIONS)
    table["sample"] = [str(Path(s).relative_to(dataset.resolve())) for s in table["sample"]]
    table.to_csv(seeds[0] / schema.PREDICTIONS, index=False)
    images, _ = read_examples(seeds[0], num_examples=1)["most confident wrong"]
    assert len(images) == 1


def test_examples_of_a_moved_dataset(seeds: list[Path], dataset: Path, tmp_path: Path) -> None:
    moved = dataset.rename(tmp_path / "elsewhere")
    with pytest.raises(DataError) as error:
        read_examples(seeds[0])
    message = str(error.value)
    assert "is not an image file" in message and "data_root=" in message and "examples.png" in message
    images, _ = read_examples(seeds[0], num_examples=1, data_root=moved)["most confident correct"]
    assert len(images) == 1


# --- 7. import cost ------------------------------------------------------------------------------


def test_plots_and_analysis_import_pandas_and_matplotlib_only_to_draw() -> None:
    for path in (REPO / "imgcls" / "plots.py", REPO / "imgcls" / "analysis" / "__init__.py"):
        tree = ast.parse(path.read_text())
        top = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        names = {alias.name for node in top if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module or "" for node in top if isinstance(node, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] in ("pandas", "matplotlib")}, path
    code = (
        "import sys, imgcls.plots, imgcls.analysis; "
        "print('pandas' in sys.modules, 'tensorboard' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
