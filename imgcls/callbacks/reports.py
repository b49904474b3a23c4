"""The test report and the predictions of ``predict``: the evaluation files of a run folder.

``TestReportWriter`` is the one component that writes evaluation files. It accumulates torchmetrics
(confusion matrix, per-class scores, top-k predictions per sample; all synchronized across processes by
torchmetrics) over the test loader and, on rank zero, writes ``metrics.json``,
``classification_report.csv``, ``confusion_matrix.csv``/``.png``, ``predictions.csv``, ``examples.png``
and ``class_distribution.csv``/``.png``. ``PredictionWriter`` writes the top-k CSV of ``predict``.
File names and folders come from ``imgcls.runs``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.utilities import dim_zero_cat

from imgcls import plots, runs

log = logging.getLogger(__name__)


def classification_metrics(
    num_classes: int, averages: tuple[str, ...] = ("none", "macro", "weighted")
) -> MetricCollection:
    """Confusion matrix plus precision, recall and F1 per average (``precision_none`` is per class)."""
    metrics: dict[str, Any] = {"confusion": MulticlassConfusionMatrix(num_classes)}
    for average in averages:
        metrics[f"precision_{average}"] = MulticlassPrecision(num_classes, average=average, zero_division=0)
        metrics[f"recall_{average}"] = MulticlassRecall(num_classes, average=average, zero_division=0)
        metrics[f"f1_{average}"] = MulticlassF1Score(num_classes, average=average, zero_division=0)
    return MetricCollection(metrics, compute_groups=False)


class TopKPredictions(Metric):
    """The top-k classes and probabilities of every sample, with its label and dataset index.

    States are concatenated across processes (``dist_reduce_fx="cat"``). A distributed sampler repeats
    a few samples to give every process the same count; ``compute`` keeps each index once, in the order
    first seen.

    Args:
        top_k: classes per sample (at most the number of classes).
    """

    full_state_update = False

    def __init__(self, top_k: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.top_k = top_k
        for name in ("index", "label", "prob", "classes"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> None:
        values, classes = probs.detach().float().topk(min(self.top_k, probs.shape[1]), dim=1)
        self.index.append(torch.as_tensor(index, device=probs.device).long())
        self.label.append(torch.as_tensor(labels, device=probs.device).long())
        self.prob.append(values)
        self.classes.append(classes)

    def compute(self) -> dict[str, np.ndarray]:
        # a list of batches in one process; one tensor once synchronized across processes
        if isinstance(self.index, list) and not self.index:
            return {
                "index": np.zeros(0, np.int64),
                "label": np.zeros(0, np.int64),
                "prob": np.zeros((0, 0), np.float32),
                "class": np.zeros((0, 0), np.int64),
            }
        rows = {
            "index": dim_zero_cat(self.index),
            "label": dim_zero_cat(self.label),
            "prob": dim_zero_cat(self.prob),
            "class": dim_zero_cat(self.classes),
        }
        rows = {name: values.cpu().numpy() for name, values in rows.items()}
        _, first = np.unique(rows["index"], return_index=True)
        return {name: values[np.sort(first)] for name, values in rows.items()}


def json_number(value: Any) -> float | int | None:
    """A metric as JSON takes it: a Python number, None for NaN and infinities."""
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _class_names(pl_module: LightningModule) -> list[str]:
    return [str(c) for c in (getattr(pl_module, "class_names", None) or range(pl_module.hparams.num_classes))]


def tta_mode(pl_module: LightningModule | None) -> str:
    """The test-time augmentation a model evaluates with (``none`` for models without the setting)."""
    return getattr(pl_module, "test_time_augmentation", "none")


def run_folder(trainer: Trainer) -> Path:
    """The run folder an evaluation reports into: the one of its checkpoint, else the logger's.

    Every process must call it: ``trainer.log_dir`` broadcasts from rank zero.
    """
    log_dir = Path(trainer.log_dir or trainer.default_root_dir)
    if trainer.ckpt_path:
        owner = runs.run_dir_of_checkpoint(trainer.ckpt_path)
        if owner is not None:
            return owner
    return runs.run_dir_of_log_dir(log_dir)


def _sample_names(trainer: Trainer, split: str, indices: np.ndarray) -> list[str]:
    datamodule = trainer.datamodule
    if datamodule is None or not hasattr(datamodule, "sample_name"):
        return [str(int(i)) for i in indices]
    return [datamodule.sample_name(split, int(i)) for i in indices]


def _split_images(trainer: Trainer, split: str, indices: list[int]) -> list[np.ndarray] | None:
    """The raw (un-normalized) images of samples, read back from the datamodule's dataset."""
    datasets = getattr(trainer.datamodule, "datasets", None) or {}
    dataset = datasets.get(split)
    if dataset is None:
        return None
    # a split (Subset or cached split) indexes a pool; batches report the pool's index
    base = getattr(dataset, "dataset", dataset)
    return [plots.to_display_images(base[i]["image"].unsqueeze(0))[0] for i in indices]


def prediction_rows(
    predictions: dict[str, np.ndarray], class_names: Sequence[str], names: Sequence[str]
) -> list[dict[str, Any]]:
    """One dict per sample: sample, index, true, predicted, probability, correct, top-k classes and probabilities.

    ``true`` and ``correct`` are empty for unlabeled samples (label -1). Rows are in index order, the
    loader's order in one process, whichever rank gathered which samples in several.
    """
    rows = []
    for i, name in enumerate(names):
        label = int(predictions["label"][i])
        classes = [class_names[int(c)] for c in predictions["class"][i]]
        probs = [float(p) for p in predictions["prob"][i]]
        row: dict[str, Any] = {
            "sample": name,
            "index": int(predictions["index"][i]),
            "true": class_names[label] if label >= 0 else "",
            "predicted": classes[0],
            "probability": round(probs[0], 6),
            "correct": (int(predictions["class"][i][0]) == label) if label >= 0 else "",
        }
        for rank, (cls, prob) in enumerate(zip(classes, probs, strict=True), start=1):
            row[f"top{rank}"] = cls
            row[f"top{rank}_prob"] = round(prob, 6)
        rows.append(row)
    return sorted(rows, key=lambda row: row["index"])


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write dicts as CSV, columns in the first row's order."""
    with path.open("w", newline="") as f:
        if not rows:
            return
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: Path, values: dict[str, Any]) -> None:
    """Write ``values`` as JSON, merging into an existing file (validate and test share metrics.json)."""
    try:
        current = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        log.warning("%s was damaged; writing it anew", path)
        current = {}
    current.update(values)
    path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def write_classification_report(
    path: Path, class_names: list[Any], results: dict[str, torch.Tensor], confusion: torch.Tensor
) -> None:
    """Per-class precision, recall, F1 and support, then macro and weighted averages."""
    support = confusion.sum(dim=1)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "precision", "recall", "f1", "support"])
        for i, name in enumerate(class_names):
            writer.writerow(
                [name]
                + [f"{results[f'{m}_none'][i].item():.6f}" for m in ("precision", "recall", "f1")]
                + [int(support[i])]
            )
        for average in ("macro", "weighted"):
            writer.writerow(
                [f"{average} avg"]
                + [f"{results[f'{m}_{average}'].item():.6f}" for m in ("precision", "recall", "f1")]
                + [int(support.sum())]
            )


def write_confusion_matrix(path: Path, class_names: list[Any], confusion: torch.Tensor) -> None:
    """Counts; rows are true classes, columns predicted classes."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, confusion.tolist(), strict=True):
            writer.writerow([name, *row])


def checkpoint_info(ckpt_path: str | None) -> dict[str, Any]:
    """Which checkpoint was evaluated (absolute path), and after how many epochs and steps of training."""
    if not ckpt_path:
        return {"checkpoint": None}
    position = runs.read_checkpoint_position(ckpt_path)
    return {
        "checkpoint": str(Path(ckpt_path).resolve()),
        "epoch": position["epoch"],
        "global_step": position["global_step"],
    }


class TestReportWriter(Callback):
    """Write the test report into the run folder when ``test`` ends.

    Args:
        output_dir: where to write; None uses the run folder of the checkpoint
            (``runs/<name>/version_N``), or its ``test-<name>`` subfolder for a checkpoint of that run
            other than ``best.ckpt`` (``test-tta-<mode>``, ``test-<name>-tta-<mode>`` with test-time
            augmentation).
        top_k: classes (with probabilities) per sample in ``predictions.csv``.
        num_examples: images of the most confident right and of the most confident wrong
            predictions in ``examples.png``; 0 skips it.
        figures: draw the PNG figures (the CSV and JSON files are always written).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self, output_dir: str | None = None, top_k: int = 5, num_examples: int = 8, figures: bool = True
    ) -> None:
        self.output_dir = output_dir
        self.top_k = top_k
        self.num_examples = num_examples
        self.figures = figures
        self.metrics: MetricCollection | None = None
        self.predictions: TopKPredictions | None = None
        self.folder: Path | None = None

    def report_dir(self, trainer: Trainer) -> Path:
        """Where the report goes (every process must call it: it may broadcast)."""
        if self.output_dir:
            return Path(self.output_dir)
        folder = run_folder(trainer)
        return runs.report_dir(
            folder,
            runs.evaluation_name("test", trainer.ckpt_path, folder, tta_mode(trainer.lightning_module)),
        )

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.metrics = classification_metrics(pl_module.hparams.num_classes).to(pl_module.device)
        self.predictions = TopKPredictions(self.top_k).to(pl_module.device)

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.metrics is None or self.predictions is None:
            return
        self.metrics.update(outputs["logits"], batch["label"])
        self.predictions.update(outputs["logits"].softmax(dim=1), batch["label"], batch["index"])

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.metrics is None or self.predictions is None:
            return
        # both synchronize across processes: every process computes, only rank zero writes
        self._results = {k: v.cpu() for k, v in self.metrics.compute().items()}
        self._gathered = self.predictions.compute()
        self.metrics.reset()
        self.predictions = None

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.metrics is None:
            return
        folder = self.report_dir(trainer)
        self.metrics = None
        if not trainer.is_global_zero:
            return
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        class_names = _class_names(pl_module)
        results = self._results
        confusion = results["confusion"].long()
        scalars = {k: json_number(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}
        # per-class scores (test_f1/<class>) are in classification_report.csv
        scalars = {k: v for k, v in scalars.items() if "/" not in k}
        scalars.update(
            {
                "test_precision_macro": json_number(results["precision_macro"]),
                "test_recall_macro": json_number(results["recall_macro"]),
                "test_f1_macro": json_number(results["f1_macro"]),
                "test_f1_weighted": json_number(results["f1_weighted"]),
                "test_samples": int(confusion.sum()),
                "test_time_augmentation": tta_mode(pl_module),
                "data_root": _data_root(trainer),
                **checkpoint_info(trainer.ckpt_path),
            }
        )
        write_json(folder / runs.TEST_METRICS, scalars)
        write_classification_report(folder / runs.CLASSIFICATION_REPORT, class_names, results, confusion)
        write_confusion_matrix(folder / runs.CONFUSION_MATRIX, class_names, confusion)
        gathered = self._gathered
        rows = prediction_rows(gathered, class_names, _sample_names(trainer, "test", gathered["index"]))
        write_rows(folder / runs.PREDICTIONS, rows)
        distribution = self._class_distribution(trainer, class_names)
        if distribution is not None:
            distribution.to_csv(folder / runs.CLASS_DISTRIBUTION, index_label="class")
        if self.figures:
            plots.save_figure(
                plots.plot_confusion_matrix(confusion, class_names), folder / runs.CONFUSION_MATRIX_FIGURE
            )
            if distribution is not None:
                plots.save_figure(
                    plots.plot_class_distribution(distribution), folder / runs.CLASS_DISTRIBUTION_FIGURE
                )
            if self.num_examples > 0:
                self._write_examples(trainer, rows, folder / runs.EXAMPLES_FIGURE)
        written = sorted(p.name for p in folder.iterdir() if p.name in runs.TEST_FILES)
        log.debug("test report of %s in %s: %s", trainer.ckpt_path, folder, ", ".join(written))

    def _class_distribution(self, trainer: Trainer, class_names: list[str]) -> Any:
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "split_targets"):
            return None
        import pandas as pd

        counts = {}
        for split in ("train", "val", "test"):
            targets = np.asarray(datamodule.split_targets(split), dtype=np.int64)
            counts[split] = np.bincount(targets[targets >= 0], minlength=len(class_names))
        return pd.DataFrame(counts, index=pd.Index(class_names, name="class"))

    def _write_examples(self, trainer: Trainer, rows: list[dict[str, Any]], path: Path) -> None:
        import pandas as pd

        table = pd.DataFrame(rows)
        if table.empty:
            return
        table = table.sort_values("probability", ascending=False, kind="stable")
        groups = {}
        for title, mask in (
            ("most confident correct", table["correct"] == True),  # noqa: E712 (a column of bools)
            ("most confident wrong", table["correct"] == False),  # noqa: E712
        ):
            chosen = table[mask].head(self.num_examples)
            images = _split_images(trainer, "test", chosen["index"].tolist())
            if images is None:
                log.info("examples.png skipped: the datamodule does not expose its test dataset")
                return
            groups[title] = (images, chosen)
        plots.save_figure(plots.plot_examples(groups, columns=self.num_examples), path)


def _data_root(trainer: Trainer) -> str | None:
    root = getattr(trainer.datamodule, "root", None)
    return str(Path(root).resolve()) if root is not None else None


class PredictionWriter(BasePredictionWriter):
    """Write ``predict``'s top-k classes and probabilities per image as a CSV in the run folder.

    Predicts on ``data.predict_root`` (a folder of unlabeled images, or one image file) when set, else on
    the datamodule's predict split (its test split); ``true`` and ``correct`` columns are filled where
    labels exist.

    Args:
        output_dir: where to write; None uses the run folder of the checkpoint (``runs/<name>/version_N``).
        filename: name of the CSV; with test-time augmentation its stem gets ``-tta-<mode>``
            (``predict-tta-dihedral.csv``), so the plain predictions stay. A name the folder already
            holds is numbered, never overwritten: ``predict_2.csv``, ``predict_3.csv``...
        top_k: classes (with probabilities) per image.
    """

    def __init__(
        self, output_dir: str | None = None, filename: str = runs.PREDICT_CSV, top_k: int = 5
    ) -> None:
        super().__init__(write_interval="batch_and_epoch")
        self.output_dir = output_dir
        self.filename = filename
        self.top_k = top_k
        self.predictions: TopKPredictions | None = None
        self.path: Path | None = None

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.predictions = TopKPredictions(self.top_k).to(pl_module.device)

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if self.predictions is not None and isinstance(prediction, dict) and "probs" in prediction:
            self.predictions.update(prediction["probs"], prediction["label"], prediction["index"])

    def write_on_epoch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        if self.predictions is None:
            return
        gathered = self.predictions.compute()  # synchronizes across processes: every process calls it
        self.predictions = None
        folder = Path(self.output_dir) if self.output_dir else run_folder(trainer)
        if not trainer.is_global_zero:
            return
        folder.mkdir(parents=True, exist_ok=True)
        names = _sample_names(trainer, "predict", gathered["index"])
        rows = prediction_rows(gathered, _class_names(pl_module), names)
        # a later predict of the run (other images, checkpoint) writes predict_2.csv, not over this one
        self.path = folder / runs.free_predict_filename(folder, tta_mode(pl_module), self.filename)
        write_rows(self.path, rows)
        log.info("wrote %d predictions to %s", len(rows), self.path)
