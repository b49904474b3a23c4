"""Reading run folders (``runs/<experiment>/version_N``): configs, reports, predictions, TensorBoard scalars."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from imgcls.errors import ConfigError, DataError

RUN_INFO = "run_info.json"
RUN_MARKERS = ("config.yaml", "hparams.yaml", "metrics.json", RUN_INFO)


def _version_number(folder: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", folder.name)
    return int(match.group(1)) if match else -1


def is_run_dir(folder: Path) -> bool:
    """Whether ``folder`` is one run: it holds a config, hparams, a report or TensorBoard events."""
    return folder.is_dir() and (
        any((folder / name).is_file() for name in RUN_MARKERS) or any(folder.glob("events.out.tfevents.*"))
    )


def find_run_dirs(paths: list[str | Path] | tuple[str | Path, ...] | str | Path) -> list[Path]:
    """Expand run folders, experiment folders (their ``version_*``) and runs folders into run folders.

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
            runs = sorted((p for p in path.glob("version_*") if is_run_dir(p)), key=_version_number)
            if not runs:
                runs = sorted(p for p in path.glob("*/version_*") if is_run_dir(p))
        if not runs:
            raise ConfigError(
                f"{path} holds no runs: expected a run folder (config.yaml, hparams.yaml, metrics.json or "
                "TensorBoard events) or folders of them (<experiment>/version_N). Run `imgcls fit` first, or "
                "pass the folder it printed."
            )
        found.extend(p for p in runs if p not in found)
    return found


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def test_command(folder: Path, subcommand: str = "test") -> str:
    """The command that evaluates the best checkpoint of the run in ``folder`` into that folder."""
    return f"imgcls {subcommand} --config {folder / 'config.yaml'} --ckpt_path {folder / 'checkpoints' / 'best.ckpt'}"


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
        if self.info.get("dataset"):
            return str(self.info["dataset"])
        root = self.data_args.get("root")
        return Path(str(root)).name if root else "unknown"

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

    def require_test_results(self) -> None:
        """Raise ``DataError`` naming the fix when the run was never tested."""
        if not self.has_test_results:
            raise DataError(
                f"run {self.path} has no test results (no test_* values in metrics.json). Run "
                f"`{test_command(self.path)}` first, or leave it out."
            )

    @cached_property
    def scalars(self) -> pd.DataFrame:
        """Every TensorBoard scalar of the run (see ``read_scalars``)."""
        return read_scalars(self.path)


def load_run(path: str | Path) -> Run:
    """Read one run folder.

    Raises:
        ConfigError: the folder does not exist or is not a run folder.
    """
    path = Path(path).expanduser()
    if not is_run_dir(path):
        raise ConfigError(
            f"{path} is not a run folder (no config.yaml, hparams.yaml, metrics.json or TensorBoard events); "
            "pass runs/<experiment>/version_N"
        )
    return Run(
        path=path,
        config=_read_yaml(path / "config.yaml"),
        hparams=_read_yaml(path / "hparams.yaml"),
        metrics=_read_json(path / "metrics.json"),
        info=_read_json(path / RUN_INFO),
    )


def load_runs(paths: list[str | Path] | tuple[str | Path, ...] | str | Path) -> list[Run]:
    """``load_run`` for every run under ``paths`` (see ``find_run_dirs``)."""
    return [load_run(p) for p in find_run_dirs(paths)]


def read_scalars(path: str | Path) -> pd.DataFrame:
    """All scalars of a run's TensorBoard event files: columns ``tag``, ``step``, ``value``, ``wall_time``.

    ``fit`` and ``test`` write separate event files into one run folder; all are read, in time order.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    columns = ["tag", "step", "value", "wall_time"]
    frames = []
    for events in sorted(Path(path).glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            rows = [(tag, e.step, e.value, e.wall_time) for e in accumulator.Scalars(tag)]
            frames.append(pd.DataFrame(rows, columns=columns))
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True).sort_values(["wall_time", "step"], kind="stable")


def read_curves(run: Run | str | Path, metrics: tuple[str, ...] = ("val_acc", "val_loss")) -> pd.DataFrame:
    """Per-epoch values of ``metrics``: one row per epoch, columns ``epoch`` and each metric.

    Lightning logs an ``epoch`` scalar at the same step as every epoch-level metric; that maps steps to
    epochs. The last value logged in an epoch wins.
    """
    scalars = run.scalars if isinstance(run, Run) else read_scalars(run)
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
        DataError: the file is missing; the message says which command writes it.
    """
    folder = run.path if isinstance(run, Run) else Path(run)
    path = folder / filename
    if not path.is_file():
        writer = "predict" if filename.startswith("predict") and filename != "predictions.csv" else "test"
        raise DataError(f"{path} does not exist; run `{test_command(folder, writer)}` to write it")
    return pd.read_csv(path, index_col=index_col)


def read_confusion_matrix(run: Run | str | Path) -> pd.DataFrame:
    """``confusion_matrix.csv`` as counts indexed by true class, with predicted classes as columns."""
    table = read_table(run, "confusion_matrix.csv", index_col=0)
    table.index = table.index.astype(str)
    table.index.name = "true"
    return table


def read_class_distribution(run: Run | str | Path) -> pd.DataFrame:
    """``class_distribution.csv``: images per class (rows) and split (columns)."""
    return read_table(run, "class_distribution.csv", index_col=0)


def read_examples(run: Run | str | Path, num_examples: int = 8) -> dict[str, tuple[list[Any], pd.DataFrame]]:
    """The most confident right and wrong test predictions with their images, for ``plots.plot_examples``.

    Images are read from the file paths in ``predictions.csv``.

    Raises:
        DataError: ``predictions.csv`` is missing, or its samples are not image files (array datasets
            name samples by index; ``examples.png`` of ``test`` shows them instead).
    """
    import numpy as np
    from PIL import Image

    table = read_table(run, "predictions.csv").sort_values("probability", ascending=False, kind="stable")
    correct = table["correct"].astype(str).str.lower() == "true"
    groups: dict[str, tuple[list[Any], pd.DataFrame]] = {}
    for title, rows in (
        ("most confident correct", table[correct]),
        ("most confident wrong", table[~correct]),
    ):
        rows = rows.head(num_examples)
        images = []
        for sample in rows["sample"]:
            if not Path(str(sample)).is_file():
                raise DataError(
                    f"sample {sample} of predictions.csv is not an image file; look at examples.png in the run folder"
                )
            with Image.open(sample) as image:
                array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
            images.append(array)
        groups[title] = (images, rows)
    return groups
