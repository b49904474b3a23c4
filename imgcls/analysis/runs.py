"""Reading run folders (``runs/<experiment>/version_N``): configs, reports, predictions, the fit's curves.

What a run folder holds and how its files are named comes from ``imgcls.runs``, the schema the writers
(the CLI and its callbacks) follow too. A file that cannot be read is a ``DataError`` naming the file and
the command that rewrites it, never a parser's traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from imgcls.errors import ConfigError, DataError
from imgcls.runs import (
    CHECKPOINTS,
    CLASS_DISTRIBUTION,
    CONFIG,
    CONFUSION_MATRIX,
    EVENTS_GLOB,
    EXAMPLES_FIGURE,
    HPARAMS,
    LAYOUT_FOLDERS,
    METRICS_CSV,
    PREDICT_CSV,
    PREDICTIONS,
    RUN_INFO,
    RUN_MARKERS,
    TEST_METRICS,
    dataset_name,
    is_run_dir,
    version_dirs,
)


def find_run_dirs(paths: list[str | Path] | tuple[str | Path, ...] | str | Path) -> list[Path]:
    """Expand run folders, experiment folders (their ``version_*``) and runs folders into run folders.

    A runs folder's subfolders are experiments, or sweeps (``imgcls sweep``'s ``<runs_dir>/<name>``) whose
    own subfolders are experiments.

    Raises:
        ConfigError: a path does not exist, or holds no run at all.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise ConfigError(
            "no run folders given; pass runs/<experiment>/version_N folders or an experiment folder"
        )
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"run folder {path} does not exist; pass folders like runs/<experiment>/version_N"
            )
        if is_run_dir(path):
            runs = [path]
        else:
            runs = [p for p in version_dirs(path) if is_run_dir(p)]
            if not runs:
                runs = [p for p in _versions_below(path) if is_run_dir(p)]
        if not runs:
            raise ConfigError(
                f"{path} holds no runs: expected a run folder ({', '.join(RUN_MARKERS)}, checkpoints or "
                "TensorBoard events) or folders of them (<experiment>/version_N). Run `imgcls fit` first, or "
                "pass the folder it printed."
            )
        found.extend(p for p in runs if p not in found)
    return found


def _versions_below(runs_dir: Path) -> list[Path]:
    """The ``version_N`` folders of a runs folder's experiments, those inside its sweeps included."""
    found = []
    for child in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        versions = version_dirs(child)
        if not versions:  # a sweep's folder: its runs' folders beside logs/ and comparison/
            versions = [v for run in sorted(child.iterdir()) if run.is_dir() for v in version_dirs(run)]
        found.extend(versions)
    return found


def test_command(folder: Path, subcommand: str = "test") -> str:
    """The command that evaluates the best checkpoint of the run in ``folder`` into that folder."""
    return f"imgcls {subcommand} --config {folder / CONFIG} --ckpt_path {folder / CHECKPOINTS / 'best.ckpt'}"


def _rewrite_hint(path: Path) -> str:
    """What to do about a damaged file of a run folder: the command that writes it, or how to do without."""
    folder, name = path.parent, path.name
    if name == RUN_INFO:
        return (
            "`fit` writes it; delete it to use the run without it (parameters and GFLOPs are then counted "
            "from a rebuilt model, the dataset named after the data folder)"
        )
    if name == METRICS_CSV:
        return "`fit` writes it; delete it to read the fit's curves from the TensorBoard event files instead"
    if name in (CONFIG, HPARAMS):
        return f"`fit` writes it and nothing rewrites it; restore it from a copy, or leave {folder} out"
    if name.startswith("predict") and name != PREDICTIONS:
        return f"Run `{test_command(folder, 'predict')}` again to rewrite it"
    return f"Run `{test_command(folder)}` again to rewrite it"


def _damaged(path: Path, reason: str) -> DataError:
    reason = " ".join(str(reason).split())
    return DataError(f"{path} is damaged (empty or cut short): {reason}. {_rewrite_hint(path)}.")


def _read_mapping(path: Path, parse: Any) -> dict[str, Any]:
    """A JSON or YAML file of a run as a dict; {} when missing.

    Raises:
        DataError: the file is empty, cut short or holds something other than a mapping.
    """
    if not path.is_file():
        return {}
    try:
        text = path.read_text()
        if not text.strip():
            raise ValueError("the file is empty")
        values = parse(text)
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise _damaged(path, str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    if not isinstance(values, dict):
        raise _damaged(path, f"it holds a {type(values).__name__}, not a mapping of names to values")
    return values


def _read_csv(path: Path, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_csv`` whose failures name the file and the fix."""
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise _damaged(path, str(err).splitlines()[0] if str(err) else type(err).__name__) from None


@dataclass
class Run:
    """One run folder and what it says about itself.

    Attributes:
        path: the run folder.
        config: the resolved ``config.yaml`` of ``fit`` (empty when missing).
        hparams: the model's ``hparams.yaml``.
        metrics: ``metrics.json`` (test results; empty before ``test``).
        info: ``run_info.json`` (dataset, parameters, GFLOPs, epoch times; written during ``fit``).
    """

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<experiment>/version_N``."""
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def has_test_results(self) -> bool:
        return any(key.startswith("test_") for key in self.metrics)

    @property
    def backbone(self) -> str | None:
        return (
            self.info.get("backbone")
            or self.hparams.get("backbone")
            or self.config.get("model", {}).get("backbone")
        )

    @property
    def class_names(self) -> list[str]:
        names = self.info.get("class_names") or self.hparams.get("class_names")
        if names:
            return [str(n) for n in names]
        return [str(i) for i in range(int(self.hparams.get("num_classes", 0)))]

    @property
    def data_args(self) -> dict[str, Any]:
        data = self.config.get("data") or {}
        return dict(data.get("init_args") or {}) if isinstance(data, dict) else {}

    @property
    def dataset(self) -> str:
        """A short dataset name: the recorded one, else the data folder's name."""
        recorded = self.info.get("dataset")
        root = self.info.get("data_root") or self.data_args.get("root")
        # runs before the layout folders were skipped recorded "raw" for fashion_mnist/raw
        if root and (not recorded or str(recorded).lower() in LAYOUT_FOLDERS):
            return dataset_name(root)
        return str(recorded) if recorded else "unknown"

    @property
    def dataset_signature(self) -> tuple[Any, ...]:
        """What must match for two runs' test numbers to be comparable: datamodule, data folder name,
        classes and test-set size."""
        data = self.config.get("data") or {}
        datamodule = self.info.get("datamodule") or (
            data.get("class_path") if isinstance(data, dict) else None
        )
        test_size = (self.info.get("split_sizes") or {}).get("test") or self.metrics.get("test_samples")
        return (str(datamodule).rsplit(".", 1)[-1], self.dataset, tuple(self.class_names), test_size)

    @property
    def seed(self) -> Any:
        return self.config.get("seed_everything")

    @property
    def launch_dir(self) -> Path | None:
        """The folder ``fit`` ran in, where relative paths of its config pointed: the run folder is
        ``<launch_dir>/<runs_dir>/<experiment>/version_N``. None when ``runs_dir`` was absolute or the
        folder has been renamed since."""
        runs_dir = Path(str(self.config.get("runs_dir") or "runs"))
        if runs_dir.is_absolute():
            return None
        folder = self.path.resolve().parent.parent
        for part in reversed(runs_dir.parts):
            if part != folder.name:
                return None
            folder = folder.parent
        return folder

    def require_test_results(self) -> None:
        """Raise ``DataError`` naming the fix when the run was never tested."""
        if not self.has_test_results:
            raise DataError(
                f"run {self.path} has no test results (no test_* values in {TEST_METRICS}). Run "
                f"`{test_command(self.path)}` first, or leave it out."
            )

    @cached_property
    def scalars(self) -> pd.DataFrame:
        """Every TensorBoard scalar of the event files in the run folder (see ``read_scalars``)."""
        return _concat_scalars(self._scalars_by_file.values())

    @cached_property
    def fit_scalars(self) -> pd.DataFrame:
        """The scalars of the fit's event files in the run folder (see ``read_curves``)."""
        return _fit_scalars(self._scalars_by_file)

    @cached_property
    def _scalars_by_file(self) -> dict[Path, pd.DataFrame]:
        return _read_event_files(self.path)


def load_run(path: str | Path) -> Run:
    """Read one run folder.

    Raises:
        ConfigError: the folder does not exist or is not a run folder.
        DataError: one of its files is damaged (empty, cut short); the message names it and the fix.
    """
    path = Path(path).expanduser()
    if not is_run_dir(path):
        raise ConfigError(
            f"{path} is not a run folder (none of {', '.join(RUN_MARKERS)}, checkpoints or TensorBoard "
            "events); pass runs/<experiment>/version_N"
        )
    return Run(
        path=path,
        config=_read_mapping(path / CONFIG, yaml.safe_load),
        hparams=_read_mapping(path / HPARAMS, yaml.safe_load),
        metrics=_read_mapping(path / TEST_METRICS, json.loads),
        info=_read_mapping(path / RUN_INFO, json.loads),
    )


def load_runs(paths: list[str | Path] | tuple[str | Path, ...] | str | Path) -> list[Run]:
    """``load_run`` for every run under ``paths`` (see ``find_run_dirs``)."""
    return [load_run(p) for p in find_run_dirs(paths)]


SCALAR_COLUMNS = ["tag", "step", "value", "wall_time"]


def _read_event_files(folder: Path) -> dict[Path, pd.DataFrame]:
    """The scalars of each TensorBoard event file directly in ``folder`` (never its subfolders)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    frames: dict[Path, pd.DataFrame] = {}
    for events in sorted(Path(folder).glob(EVENTS_GLOB)):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        rows = [
            (tag, e.step, e.value, e.wall_time)
            for tag in accumulator.Tags().get("scalars", [])
            for e in accumulator.Scalars(tag)
        ]
        frames[events] = pd.DataFrame(rows, columns=SCALAR_COLUMNS)
    return frames


def _concat_scalars(frames: Any) -> pd.DataFrame:
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=SCALAR_COLUMNS)
    return pd.concat(frames, ignore_index=True).sort_values(["wall_time", "step"], kind="stable")


def _fit_scalars(by_file: dict[Path, pd.DataFrame]) -> pd.DataFrame:
    # evaluations of older runs wrote event files of their own into the run folder: only fit logs train_*
    return _concat_scalars(frame for frame in by_file.values() if frame["tag"].str.startswith("train_").any())


def read_scalars(path: str | Path) -> pd.DataFrame:
    """All scalars of the TensorBoard event files directly in a run folder: columns ``tag``, ``step``,
    ``value``, ``wall_time``, in time order. Evaluations log into subfolders, which are not read."""
    return _concat_scalars(_read_event_files(Path(path)).values())


def _folder(run: Run | str | Path) -> Path:
    return run.path if isinstance(run, Run) else Path(run)


def read_curves(run: Run | str | Path, metrics: tuple[str, ...] = ("val_acc", "val_loss")) -> pd.DataFrame:
    """Per-epoch values of ``metrics`` during ``fit``: one row per epoch, columns ``epoch`` and each metric.

    Read from the run folder's ``metrics.csv`` (the fit's CSVLogger); for runs made before it, from the
    fit's TensorBoard event files in the run folder (those that logged ``train_*`` scalars). Evaluations
    (``validate``, ``test``) log into subfolders or files of their own and never change the curves. The
    last value logged within an epoch wins (a resumed fit's over the interrupted one's).

    Raises:
        DataError: ``metrics.csv`` is damaged.
    """
    folder = _folder(run)
    if (folder / METRICS_CSV).is_file():
        return _curves_from_csv(folder / METRICS_CSV, metrics)
    scalars = run.fit_scalars if isinstance(run, Run) else _fit_scalars(_read_event_files(folder))
    return _curves_from_scalars(scalars, metrics)


def _curves_from_csv(path: Path, metrics: tuple[str, ...]) -> pd.DataFrame:
    table = _read_csv(path)
    if "epoch" not in table:
        raise _damaged(path, "it has no epoch column")
    # LearningRateMonitor's rows carry no epoch; each comes just before the rows of the epoch it belongs to
    table["epoch"] = pd.to_numeric(table["epoch"], errors="coerce").bfill().ffill()
    table = table.dropna(subset=["epoch"]).astype({"epoch": int})
    frame = pd.DataFrame({"epoch": sorted(table["epoch"].unique().tolist())})
    for metric in metrics:
        if metric not in table:
            frame[metric] = float("nan")
            continue
        values = pd.to_numeric(table[metric], errors="coerce")
        last = values.groupby(table["epoch"]).last()  # the last non-empty value of each epoch
        frame[metric] = frame["epoch"].map(last).astype(float)
    return frame


def _curves_from_scalars(scalars: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    # Lightning logs an ``epoch`` scalar at the step of every epoch-level metric: that maps steps to epochs
    epochs = scalars[scalars.tag == "epoch"].drop_duplicates("step", keep="last").set_index("step")["value"]
    frame = pd.DataFrame({"epoch": sorted({int(e) for e in epochs})})
    for metric in metrics:
        rows = scalars[scalars.tag == metric]
        if rows.empty:
            frame[metric] = float("nan")
            continue
        rows = rows.assign(epoch=rows.step.map(epochs))
        # a step without an epoch scalar (should not happen) keeps the newest known epoch
        rows["epoch"] = rows["epoch"].ffill().fillna(0).astype(int)
        values = rows.drop_duplicates("epoch", keep="last").set_index("epoch")["value"]
        frame[metric] = frame["epoch"].map(values)
    return frame


def read_table(run: Run | str | Path, filename: str, index_col: int | None = None) -> pd.DataFrame:
    """A CSV report of a run (``predictions.csv``, ``classification_report.csv``...).

    Raises:
        DataError: the file is missing or damaged; the message says which command writes it.
    """
    folder = _folder(run)
    path = folder / filename
    if not path.is_file():
        writer = (
            "predict" if filename.startswith(Path(PREDICT_CSV).stem) and filename != PREDICTIONS else "test"
        )
        raise DataError(f"{path} does not exist; run `{test_command(folder, writer)}` to write it")
    return _read_csv(path, index_col=index_col)


def read_confusion_matrix(run: Run | str | Path) -> pd.DataFrame:
    """``confusion_matrix.csv`` as counts indexed by true class, with predicted classes as columns."""
    table = read_table(run, CONFUSION_MATRIX, index_col=0)
    table.index = table.index.astype(str)
    table.index.name = "true"
    return table


def read_class_distribution(run: Run | str | Path) -> pd.DataFrame:
    """``class_distribution.csv``: images per class (rows) and split (columns)."""
    return read_table(run, CLASS_DISTRIBUTION, index_col=0)


def _sample_candidates(run: Run, sample: str, data_root: str | Path | None) -> list[Path]:
    """Where the image of a ``predictions.csv`` sample may be, most likely first."""
    path = Path(sample).expanduser()
    given = Path(data_root).expanduser() if data_root else None
    recorded = Path(run.metrics["data_root"]) if run.metrics.get("data_root") else None  # absolute
    configured = Path(str(run.data_args["root"])).expanduser() if run.data_args.get("root") else None
    launch = run.launch_dir
    if path.is_absolute():
        # the dataset moved since: the same file under the folder given now
        moved = [
            given / path.relative_to(old)
            for old in (recorded, configured)
            if given and old and old.is_absolute() and path.is_relative_to(old)
        ]
        return [path, *moved]
    roots = [root for root in (given, recorded) if root]
    if configured:
        roots.append(launch / configured if launch and not configured.is_absolute() else configured)
    candidates = [launch / path] if launch else []  # older runs: relative to where test ran, beside runs/
    for root in roots:
        candidates.append(root / path)
        if configured and not configured.is_absolute() and path.is_relative_to(configured):
            candidates.append(root / path.relative_to(configured))  # "samples/eurosat/..." under the root
    candidates.append(path)  # relative to the working directory
    return list(dict.fromkeys(candidates))


def resolve_sample(run: Run, sample: str, data_root: str | Path | None = None) -> Path | None:
    """The image file of a ``predictions.csv`` sample, wherever the run folder has moved to.

    Absolute paths are taken as they are. Relative ones (older runs wrote them relative to the folder
    ``test`` ran in) are looked up beside the run's ``runs`` folder, under ``data_root``, under the data
    root ``metrics.json`` recorded and under the config's ``data.init_args.root``.

    Returns:
        The file, or None when no candidate is a file (array datasets name samples by index).
    """
    return next((p for p in _sample_candidates(run, str(sample), data_root) if p.is_file()), None)


def read_examples(
    run: Run | str | Path, num_examples: int = 8, data_root: str | Path | None = None
) -> dict[str, tuple[list[Any], pd.DataFrame]]:
    """The most confident right and wrong test predictions with their images, for ``plots.plot_examples``.

    Images are read from the files ``predictions.csv`` names (see ``resolve_sample``).

    Args:
        run: a run or run folder.
        num_examples: images per group.
        data_root: the dataset folder, when it has moved since the run was tested.

    Raises:
        DataError: ``predictions.csv`` is missing, or its samples are not image files (array datasets
            name samples by index; ``examples.png`` of ``test`` shows them instead).
    """
    import numpy as np
    from PIL import Image

    run = run if isinstance(run, Run) else load_run(run)
    table = read_table(run, PREDICTIONS).sort_values("probability", ascending=False, kind="stable")
    correct = table["correct"].astype(str).str.lower() == "true"
    groups: dict[str, tuple[list[Any], pd.DataFrame]] = {}
    for title, rows in (
        ("most confident correct", table[correct]),
        ("most confident wrong", table[~correct]),
    ):
        rows = rows.head(num_examples)
        images = []
        for sample in rows["sample"]:
            path = resolve_sample(run, str(sample), data_root)
            if path is None:
                looked = ", ".join(str(p) for p in _sample_candidates(run, str(sample), data_root))
                raise DataError(
                    f"sample {sample} of {run.path / PREDICTIONS} is not an image file (looked at {looked}). "
                    "If the dataset has moved, pass its folder: read_examples(run, data_root=...). A dataset "
                    f"held in arrays (MNIST, CIFAR-10) names samples by index: see {EXAMPLES_FIGURE} in the "
                    "run folder instead."
                )
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
            images.append(array)
        groups[title] = (images, rows)
    return groups
