"""Comparing runs: one table of model, cost and accuracy per run, seed groups with confidence intervals.

Everything is read from run folders (``run_info.json``, ``metrics.json``, the fit's ``metrics.csv`` or
TensorBoard events); a model is rebuilt only for runs made before ``run_info.json`` existed. The train and
validation columns are those of the epoch whose checkpoint was tested (``tested_epoch``), so that every
number of a row describes one model. Few-shot runs (``fewshot.json``, from ``imgcls fewshot``) have no
test metrics: they get a table of their own, one row per run and method.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imgcls import plots
from imgcls.analysis.runs import Run, find_run_dirs, load_run, read_curves, test_command
from imgcls.errors import ConfigError, DataError
from imgcls.runs import (
    CHECKPOINTS,
    CONFIG,
    FEWSHOT_RESULTS,
    TEST_METRICS,
    experiment_settings,
    read_checkpoint_position,
    run_dir_of_checkpoint,
)
from imgcls.stats import mean_std_ci95

log = logging.getLogger(__name__)

# metrics that vary between seeds: averaged with std and a 95% interval in groups
METRICS = (
    "train_acc",
    "train_loss",
    "val_acc",
    "val_loss",
    "test_acc",
    "test_loss",
    "seconds_per_epoch",
    "fit_seconds",
)


def group_key(run: Run) -> str:
    """What defines an experiment apart from its seeds: the settings of ``imgcls.runs.RUN_SETTINGS`` that
    make one, and the dataset itself."""
    config = run.config
    if not config.get("model"):  # a run without config.yaml: its model's hyperparameters
        config = {**config, "model": {k: v for k, v in run.hparams.items() if k != "_instantiator"}}
    key = {**experiment_settings(config), "dataset": run.dataset_signature}
    return json.dumps(key, sort_keys=True, default=str)


def _value_at_epoch(curves: pd.DataFrame, metric: str, epoch: int | None) -> float:
    """The value of ``metric`` at ``epoch``; of the last epoch that has one when ``epoch`` is None."""
    if metric not in curves or curves[metric].isna().all():
        return float("nan")
    rows = curves.dropna(subset=[metric])
    if epoch is None:
        return float(rows[metric].iloc[-1])
    at_epoch = rows.loc[rows["epoch"] == epoch, metric]
    return float(at_epoch.iloc[-1]) if len(at_epoch) else float("nan")


def tested_epoch(run: Run) -> int | None:
    """The 0-based epoch of the checkpoint ``test`` evaluated: recorded in ``metrics.json``, else (runs
    tested before it was) read from the run's ``best.ckpt``; None when neither says."""
    epoch = run.metrics.get("epoch")
    if epoch is None and run.has_test_results and "checkpoint" not in run.metrics:
        best = run.path / CHECKPOINTS / "best.ckpt"
        if best.is_file():
            try:
                epoch = read_checkpoint_position(best)["epoch"]
            except DataError as err:
                log.warning("%s: cannot tell the tested epoch: %s", run.name, err)
    return int(epoch) if epoch is not None else None


def _rebuilt_cost(run: Run) -> tuple[float, float]:
    """Parameters and GFLOPs of a run without ``run_info.json``, from a rebuilt model (NaN if impossible)."""
    # here, not at the top: a comparison of runs that record their cost builds no model and imports none
    from imgcls.models.summary import build_model, count_gflops

    size = run.data_args.get("image_size")
    if not run.hparams.get("backbone"):
        return float("nan"), float("nan")
    import torch

    model = build_model(**run.hparams).eval()
    params = float(sum(p.numel() for p in model.parameters()))
    if not size:
        return params, float("nan")
    images = torch.zeros(1, int(run.hparams.get("in_chans", 3)), int(size), int(size))
    return params, count_gflops(model, images)


def run_row(run: Run) -> dict[str, Any]:
    """One run's row of the comparison table."""
    metrics = run.metrics
    curves = read_curves(run, ("train_acc", "train_loss_epoch", "val_acc", "val_loss", "train_epoch_sec"))
    # train/val numbers of the epoch whose checkpoint was tested, so that all columns describe one model
    epoch = tested_epoch(run)
    # run_info.json's final values stand in for curves that lack a metric, when they are of that epoch
    final_epoch = run.info.get("final_epoch")
    final = (run.info.get("final") or {}) if epoch is None or final_epoch == epoch else {}

    def pick(metric: str, fallback: str | None = None) -> float:
        value = _value_at_epoch(curves, metric, epoch)
        return value if not math.isnan(value) else float(final.get(fallback or metric, float("nan")))

    params = run.info.get("total_params")
    gflops = run.info.get("gflops")
    if params is None or gflops is None:
        log.info("%s has no run_info.json parameters/GFLOPs; rebuilding its model to count them", run.name)
        rebuilt = _rebuilt_cost(run)
        params = params if params is not None else rebuilt[0]
        gflops = gflops if gflops is not None else rebuilt[1]
    seconds = run.info.get("seconds_per_epoch")
    if seconds is None and curves["train_epoch_sec"].notna().any():
        seconds = curves["train_epoch_sec"].mean()
    if seconds is None:
        # older runs: the spacing of the per-epoch validation events
        times = run.fit_scalars.loc[run.fit_scalars.tag == "val_loss", "wall_time"].sort_values()
        seconds = float(times.diff().mean()) if len(times) > 1 else None
    epochs = run.info.get("epochs")
    if epochs is None and not curves.empty:
        epochs = int(curves["epoch"].max()) + 1
    epoch_seconds = run.info.get("epoch_seconds") or {}
    fit_seconds = sum(epoch_seconds.values()) if epoch_seconds else (seconds or float("nan")) * (epochs or 0)
    test_acc = float(metrics.get("test_acc", float("nan")))
    return {
        "run": run.name,
        "experiment": run.path.parent.name,
        "model": run.backbone,
        "dataset": run.dataset,
        "seed": run.seed,
        "params": params,
        "gflops": gflops,
        "epochs": epochs,
        "tested_epoch": epoch,
        "seconds_per_epoch": seconds,
        "fit_seconds": fit_seconds or float("nan"),
        "device": run.info.get("device", ""),
        "train_acc": pick("train_acc"),
        "train_loss": pick("train_loss_epoch", "train_loss"),
        "val_acc": pick("val_acc"),
        "val_loss": pick("val_loss"),
        "test_acc": test_acc,
        "test_loss": float(metrics.get("test_loss", float("nan"))),
        "acc_per_gflop": test_acc / gflops if gflops else float("nan"),
        "path": str(run.path),
    }


def check_comparable(runs: list[Run], allow_mixed: bool = False, skip_untested: bool = False) -> list[Run]:
    """Refuse untested runs and runs of different datasets, naming them and the fix.

    Args:
        runs: the runs to compare.
        allow_mixed: compare runs of different datasets anyway (the table's ``dataset`` column tells them apart).
        skip_untested: leave runs without test results out (logged) instead of raising.

    Raises:
        DataError: a run has no test results.
        ConfigError: the runs come from different datasets.
    """
    untested = [r for r in runs if not r.has_test_results]
    if untested and not skip_untested:
        names = ", ".join(str(r.path) for r in untested)
        raise DataError(
            f"no test results ({TEST_METRICS} with test_* values) in: {names}. Run "
            f"`{test_command(untested[0].path)}` for each, or pass --skip-untested to leave them out."
        )
    for run in untested:
        log.warning("leaving out %s: it has no test results", run.path)
    runs = [r for r in runs if r.has_test_results]
    if not runs:
        raise DataError(f"none of the runs has test results; run `{test_command(Path('RUN'))}` first")
    datasets: dict[tuple[Any, ...], list[str]] = {}
    for run in runs:
        datasets.setdefault(run.dataset_signature, []).append(run.name)
    if len(datasets) > 1 and not allow_mixed:
        described = "; ".join(
            f"{sig[1]} ({sig[0]}, {len(sig[2])} classes, {sig[3]} test images): {', '.join(names)}"
            for sig, names in datasets.items()
        )
        raise ConfigError(
            f"the runs come from {len(datasets)} different datasets, whose test accuracies do not compare: "
            f"{described}. Compare one dataset at a time, or pass --allow-mixed to list them side by side."
        )
    return runs


def _distinct_names(names: list[str], paths: list[Path]) -> list[str]:
    """Run names (``experiment/version_N``) that tell the runs apart: where runs of different folders share
    a name, each one's path from the folder those runs have in common (``b256/eurosat_recipe/version_0``)
    rather than an absolute path, so that a table reads the same on every machine. Rows of one run (one
    path) keep one name."""
    resolved = [Path(path).resolve() for path in paths]
    sharing: dict[str, set[Path]] = {}
    for name, path in zip(names, resolved, strict=True):
        sharing.setdefault(name, set()).add(path)
    bases = {name: Path(os.path.commonpath(same)) for name, same in sharing.items() if len(same) > 1}
    return [
        path.relative_to(bases[name]).as_posix() if name in bases else name
        for name, path in zip(names, resolved, strict=True)
    ]


def _unless_damaged(read: Any, what: Any, skip: bool) -> Any:
    """``read(what)``; with ``skip``, None and a warning when a file of the run is damaged."""
    try:
        return read(what)
    except DataError as err:
        if not skip:
            raise DataError(f"{err} To compare the other runs without it, pass --skip-untested.") from err
        log.warning("leaving out %s: %s", getattr(what, "path", what), err)
        return None


def split_run_folders(paths: Sequence[str | Path] | str | Path) -> tuple[list[Path], list[Path]]:
    """The run folders under ``paths`` (see ``find_run_dirs``): trained runs, then few-shot runs.

    Raises:
        ConfigError: a path does not exist, or holds no runs.
    """
    trained: list[Path] = []
    fewshot: list[Path] = []
    for folder in find_run_dirs(paths):
        (fewshot if is_fewshot_run(folder) else trained).append(folder)
    return trained, fewshot


def compare_runs(
    paths: Sequence[str | Path] | str | Path, allow_mixed: bool = False, skip_untested: bool = False
) -> pd.DataFrame:
    """One row per run: model, dataset, seed, parameters, GFLOPs, epochs, seconds per epoch, accuracies,
    losses, accuracy per GFLOP and the run folder, plus a ``group`` column naming runs that differ only
    in seed. Few-shot runs among them are left out (``compare_fewshot_runs`` compares them).

    Args:
        paths: run folders, experiment folders or runs folders (see ``find_run_dirs``).
        allow_mixed: compare runs of different datasets (otherwise a ``ConfigError``).
        skip_untested: leave out runs without test results or with damaged files, with a logged
            warning (otherwise a ``DataError``).

    Raises:
        DataError: a run has no test results, or a damaged file (empty or cut short ``metrics.json``...).
        ConfigError: the runs come from different datasets, or a path holds no runs.
    """
    trained, fewshot = split_run_folders(paths)
    if fewshot:
        log.info("%d few-shot runs are compared apart (compare_fewshot_runs, fewshot.md)", len(fewshot))
    if not trained:
        raise DataError(
            f"every run is a few-shot run ({FEWSHOT_RESULTS}), which has no test metrics to compare here; "
            "compare_fewshot_runs (or `imgcls compare`, which writes fewshot.md) compares them"
        )
    return _runs_table(trained, allow_mixed, skip_untested)


def _runs_table(folders: list[Path], allow_mixed: bool, skip_untested: bool) -> pd.DataFrame:
    """``compare_runs`` of trained run folders."""
    loaded = [_unless_damaged(load_run, folder, skip_untested) for folder in folders]
    loaded = [run for run in loaded if run is not None]
    if not loaded:
        raise DataError("every run has a damaged file (see the warnings above); nothing to compare")
    runs, rows = [], []
    for run in check_comparable(loaded, allow_mixed, skip_untested):
        row = _unless_damaged(run_row, run, skip_untested)
        if row is not None:
            runs.append(run)
            rows.append(row)
    if not runs:
        raise DataError("every run has a damaged file (see the warnings above); nothing to compare")
    table = pd.DataFrame(rows).astype({"tested_epoch": "Int64"})
    table["run"] = _distinct_names(table["run"].tolist(), [run.path for run in runs])
    keys = [group_key(r) for r in runs]
    labels: dict[str, str] = {}
    uses: dict[str, int] = {}  # how many groups so far got each label
    for key, run in zip(keys, runs, strict=True):
        if key not in labels:
            experiments = {r.path.parent.name for r, k in zip(runs, keys, strict=True) if k == key}
            label = _common_name(experiments) or str(run.backbone)
            uses[label] = uses.get(label, 0) + 1
            labels[key] = f"{label} ({uses[label]})" if uses[label] > 1 else label
    table.insert(1, "group", [labels[k] for k in keys])
    return table


def _common_name(experiments: set[str]) -> str:
    """What the experiment names of one group share: the name itself for one experiment, else the
    ``key=value`` parts common to all (a sweep's ``lr=0.01,seed=0`` and ``lr=0.01,seed=1`` give
    ``lr=0.01``); empty when they share none."""
    if len(experiments) == 1:
        return next(iter(experiments))
    parts = [name.split(",") for name in sorted(experiments)]
    return ",".join(part for part in parts[0] if all(part in other for other in parts[1:]))


def group_runs(table: pd.DataFrame) -> pd.DataFrame:
    """Runs of one group (differing only in seed): mean, standard deviation and 95% CI of each metric.

    The interval is the t-distribution's (n - 1 degrees of freedom); one run gives NaN spread.
    """
    rows = []
    for group, frame in table.groupby("group", sort=False):
        row: dict[str, Any] = {
            "group": group,
            "model": frame["model"].iloc[0],
            "dataset": frame["dataset"].iloc[0],
            "runs": len(frame),
            "seeds": ", ".join(str(s) for s in frame["seed"]),
            "params": frame["params"].iloc[0],
            "gflops": frame["gflops"].iloc[0],
            "epochs": float(pd.to_numeric(frame["epochs"], errors="coerce").mean()),
            "tested_epochs": ", ".join("?" if pd.isna(e) else str(e) for e in frame.get("tested_epoch", [])),
            "device": ", ".join(sorted({str(d) for d in frame["device"] if d})),
        }
        if "study" in frame:
            row["study"] = frame["study"].iloc[0]
        for metric in METRICS:
            values = pd.to_numeric(frame[metric], errors="coerce").tolist()
            row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_ci95"] = mean_std_ci95(values)
        gflops = row["gflops"]
        row["acc_per_gflop"] = row["test_acc_mean"] / gflops if gflops else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _format(value: Any, column: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column == "params":
        return f"{float(value) / 1e6:.3f}M"
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(value)
    if isinstance(value, float | np.floating):
        if column.startswith(("train_acc", "val_acc", "test_acc")) and not column.endswith("_std"):
            return f"{value:.2%}"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _merge_intervals(table: pd.DataFrame) -> pd.DataFrame:
    """``<m>_mean``, ``<m>_std``, ``<m>_ci95`` columns -> one ``<m> (95% CI)`` column of "mean ± half-width"."""
    merged = pd.DataFrame(index=table.index)
    for column in table.columns:
        if column.endswith(("_std", "_ci95")) and column.rsplit("_", 1)[0] + "_mean" in table:
            continue
        if not column.endswith("_mean"):
            merged[column] = table[column]
            continue
        metric = column.removesuffix("_mean")
        means, halves = table[column], table[f"{metric}_ci95"]
        merged[f"{metric} (95% CI)"] = [
            _format(m, metric) + ("" if pd.isna(h) else " ± " + _format(h, metric))
            for m, h in zip(means, halves, strict=True)
        ]
    return merged


def describe_epochs(table: pd.DataFrame) -> str:
    """The line under a comparison table that says which epoch each number is from ("" if none apply)."""
    if "tested_epochs" in table:
        text = (
            "train_* and val_* of each run are from its tested epoch (tested_epochs: the epochs of the tested "
            f"checkpoints, 0-based as in TensorBoard), test_* from {TEST_METRICS}; mean ± half-width of the "
            "t-distribution 95% CI over seeds."
        )
        if table["tested_epochs"].astype(str).str.contains("?", regex=False).any():
            text += " A ? marks a run tested before its epoch was recorded: its train_* and val_* are its last epoch's."
    elif "tested_epoch" in table:
        text = (
            "train_* and val_* are from tested_epoch, the epoch of the tested checkpoint (0-based, as in "
            f"TensorBoard); test_* from {TEST_METRICS}."
        )
        if table["tested_epoch"].isna().any():
            text += " Where tested_epoch is empty (tested before it was recorded), they are the last epoch's."
    else:
        return ""
    return text


def to_markdown(table: pd.DataFrame, note: bool = True) -> str:
    """A GitHub Markdown table; accuracies as percentages, parameters in millions, and seed groups'
    mean, std and CI columns as one "mean ± 95% CI half-width" column per metric.

    Args:
        table: ``compare_runs`` or ``group_runs`` output, or any table.
        note: add the line that says which epoch the train and validation columns are from.
    """
    text = describe_epochs(table) if note else ""
    if any(c.endswith("_mean") for c in table.columns):
        table = _merge_intervals(table)
    header = "| " + " | ".join(table.columns) + " |"
    align = (
        "|"
        + "|".join("---:" if pd.api.types.is_numeric_dtype(table[c]) else "---" for c in table.columns)
        + "|"
    )
    lines = [header, align]
    for record in table.itertuples(index=False):
        lines.append(
            "| " + " | ".join(_format(v, c) for v, c in zip(record, table.columns, strict=True)) + " |"
        )
    if text:
        lines += ["", text]
    return "\n".join(lines)


# --- few-shot runs ------------------------------------------------------------------------------


def is_fewshot_run(folder: str | Path) -> bool:
    """Whether a run folder holds a few-shot study (``fewshot.json``, no test metrics)."""
    folder = Path(folder)
    return (folder / FEWSHOT_RESULTS).is_file() and not (folder / TEST_METRICS).is_file()


def read_fewshot(folder: str | Path) -> dict[str, Any]:
    """A few-shot run's ``fewshot.json``.

    Raises:
        DataError: the file is empty, cut short or not a study's results; the message says how to redo it.
    """
    path = Path(folder) / FEWSHOT_RESULTS
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as err:
        reason = " ".join((str(err).splitlines() or [type(err).__name__])[0].split())
        results, problem = None, f"it cannot be read ({reason or 'the file is empty'})"
    else:
        problem = "it holds no per-method results"
    if not isinstance(results, dict) or not isinstance(results.get("methods"), dict):
        raise DataError(
            f"{path} is damaged: {problem}. Run `imgcls fewshot --config {Path(folder) / CONFIG}` again "
            "to redo the study (into a new run folder)."
        )
    return results


def _weights_name(results: dict[str, Any]) -> str:
    """Where a study's backbone weights came from, short: the checkpoint's run and file, ImageNet,
    random, or a weights file's name."""
    checkpoint = results.get("checkpoint")
    if checkpoint:
        run_dir = run_dir_of_checkpoint(checkpoint)
        name = Path(checkpoint).name
        return f"{run_dir.parent.name}/{run_dir.name}/{name}" if run_dir is not None else name
    pretrained = results.get("pretrained")
    if pretrained is True:
        return "ImageNet"
    return Path(str(pretrained)).name if pretrained else "random"


def compare_fewshot_runs(
    paths: Sequence[str | Path] | str | Path, skip_damaged: bool = False
) -> pd.DataFrame:
    """One row per few-shot run and method: the model and its weights, the data, the episodes' shape,
    the mean accuracy with its std and 95% CI half-width, episodes and seconds.

    Args:
        paths: run folders, experiment folders or runs folders; runs other than few-shot ones are left out.
        skip_damaged: leave out runs whose ``fewshot.json`` is damaged, with a logged warning.

    Raises:
        ConfigError: a path holds no runs.
        DataError: no few-shot runs, or a damaged ``fewshot.json``.
    """
    given = [paths] if isinstance(paths, str | Path) else list(paths)
    _, fewshot = split_run_folders(given)
    if not fewshot:
        raise DataError(f"no few-shot runs ({FEWSHOT_RESULTS}) in {', '.join(str(p) for p in given)}")
    return _fewshot_table(fewshot, skip_damaged)


def _fewshot_table(folders: list[Path], skip_damaged: bool) -> pd.DataFrame:
    """``compare_fewshot_runs`` of few-shot run folders."""
    rows = []
    for folder in folders:
        results = _unless_damaged(read_fewshot, folder, skip_damaged)
        if results is None:
            continue
        for method, scores in results["methods"].items():
            rows.append(
                {
                    "run": f"{folder.parent.name}/{folder.name}",
                    "experiment": folder.parent.name,
                    "model": results.get("backbone"),
                    "weights": _weights_name(results),
                    "dataset": results.get("dataset"),
                    "split": results.get("split"),
                    "n_way": results.get("n_way"),
                    "k_shot": results.get("k_shot"),
                    "q_query": results.get("q_query"),
                    "seed": results.get("seed"),
                    "method": method,
                    "mean": scores.get("mean"),
                    "std": scores.get("std"),
                    "ci95": scores.get("ci95"),
                    "episodes": scores.get("episodes"),
                    "seconds": scores.get("seconds"),
                    "feature_dim": results.get("feature_dim"),
                    "checkpoint": results.get("checkpoint"),
                    "path": str(folder),
                }
            )
    if not rows:
        raise DataError("every few-shot run has a damaged file (see the warnings above); nothing to compare")
    table = pd.DataFrame(rows)
    table["run"] = _distinct_names(table["run"].tolist(), table["path"].tolist())
    return table.astype({"mean": float, "std": float, "ci95": float})


def fewshot_markdown(table: pd.DataFrame) -> str:
    """``compare_fewshot_runs`` as a Markdown table: accuracy as "mean ± 95% CI half-width"."""
    shown = table[
        ["run", "model", "weights", "dataset", "split", "n_way", "k_shot", "q_query", "method"]
    ].copy()
    shown["accuracy (95% CI)"] = [
        _format(mean, "test_acc") + ("" if pd.isna(half) else " ± " + _format(half, "test_acc"))
        for mean, half in zip(table["mean"], table["ci95"], strict=True)
    ]
    shown["episodes"] = table["episodes"]
    shown["seconds"] = table["seconds"]
    return to_markdown(shown, note=False)


def validation_curves(paths_or_runs: Sequence[Run | str | Path]) -> dict[str, pd.DataFrame]:
    """Per-epoch ``val_acc`` and ``val_loss`` of each run, keyed by run name (for ``plots.plot_curves``)."""
    runs = [r if isinstance(r, Run) else load_run(r) for r in paths_or_runs]
    names = _distinct_names([run.name for run in runs], [run.path for run in runs])
    return {name: read_curves(run, ("val_acc", "val_loss")) for name, run in zip(names, runs, strict=True)}


def write_comparison(
    paths: Sequence[str | Path],
    output_dir: str | Path,
    goal: float | None = None,
    allow_mixed: bool = False,
    skip_untested: bool = False,
    figures: bool = True,
    reference: dict[str, str] | None = None,
) -> dict[str, Path]:
    """``imgcls compare``: tables (Markdown and CSV) and figures of runs into ``output_dir``.

    Writes ``comparison.md/.csv`` (one row per run), ``groups.md/.csv`` (mean, std, 95% CI over seeds)
    when some runs differ only in seed, ``test_accuracy.png`` (with the ``goal`` line),
    ``accuracy_vs_gflops.png`` and ``val_curves.png``. Few-shot runs among them go to
    ``fewshot.md/.csv`` (one row per run and method; ``skip_untested`` also skips damaged ones).

    ``reference`` maps experiment names to the figure the replicated study reported: a ``study``
    column after ``test_acc``.

    Returns:
        Name -> path of every file written (``comparison_md``, ``groups_md``, ``fewshot_md``...).
    """
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    trained, fewshot = split_run_folders(paths)
    written = _write_fewshot_tables(fewshot, output, skip_untested) if fewshot else {}
    if not trained:  # few-shot runs alone: fewshot.md is the comparison
        return written
    try:
        table = _runs_table(trained, allow_mixed, skip_untested)
    except DataError:
        if not (fewshot and skip_untested):
            raise
        log.warning(
            "no tested run is left besides the few-shot runs: only %s is written", written["fewshot_md"]
        )
        return written
    return written | _write_run_tables(table, output, goal, figures, reference)


def _write_fewshot_tables(folders: list[Path], output: Path, skip_damaged: bool) -> dict[str, Path]:
    """``fewshot.csv`` and ``fewshot.md`` of few-shot run folders."""
    table = _fewshot_table(folders, skip_damaged)
    table.to_csv(output / "fewshot.csv", index=False)
    (output / "fewshot.md").write_text(fewshot_markdown(table) + "\n")
    return {"fewshot_csv": output / "fewshot.csv", "fewshot_md": output / "fewshot.md"}


def _write_run_tables(
    table: pd.DataFrame, output: Path, goal: float | None, figures: bool, reference: dict[str, str] | None
) -> dict[str, Path]:
    """The tables and figures of ``compare_runs``'s ``table`` of trained runs."""
    written: dict[str, Path] = {}
    if reference is not None:
        table.insert(
            table.columns.get_loc("test_acc") + 1, "study", table["experiment"].map(reference).fillna("")
        )
    table.to_csv(output / "comparison.csv", index=False)
    (output / "comparison.md").write_text(to_markdown(table.drop(columns="path")) + "\n")
    written.update(comparison_csv=output / "comparison.csv", comparison_md=output / "comparison.md")
    grouped = group_runs(table)
    summary_table, label = table, "run"
    if (grouped["runs"] > 1).any():
        grouped.to_csv(output / "groups.csv", index=False)
        (output / "groups.md").write_text(to_markdown(grouped) + "\n")
        written.update(groups_csv=output / "groups.csv", groups_md=output / "groups.md")
        summary_table, label = grouped, "group"
    if figures:
        figures_to_write = {
            "test_accuracy": plots.plot_test_accuracy(summary_table, goal=goal, label=label),
            "accuracy_vs_gflops": plots.plot_accuracy_vs_gflops(summary_table, label=label),
            "val_curves": plots.plot_curves(validation_curves(table["path"].tolist())),
        }
        for name, figure in figures_to_write.items():
            written[name] = plots.save_figure(figure, output / f"{name}.png")
    return written
