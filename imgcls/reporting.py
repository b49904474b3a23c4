"""The test report: what a run folder holds after ``test``.

``TestReportWriter`` is the one component that writes evaluation files. It accumulates
torchmetrics over the test loader (synchronized across processes) and, on rank zero, writes
``metrics.json``, ``classification_report.csv`` and ``confusion_matrix.csv`` into the run folder.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)


def _report_metrics(num_classes: int) -> MetricCollection:
    metrics: dict[str, Any] = {"confusion": MulticlassConfusionMatrix(num_classes)}
    for average in ("none", "macro", "weighted"):
        metrics[f"precision_{average}"] = MulticlassPrecision(num_classes, average=average, zero_division=0)
        metrics[f"recall_{average}"] = MulticlassRecall(num_classes, average=average, zero_division=0)
        metrics[f"f1_{average}"] = MulticlassF1Score(num_classes, average=average, zero_division=0)
    return MetricCollection(metrics, compute_groups=False)


def _number(value: Any) -> float | int | None:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class TestReportWriter(Callback):
    """Write the test report into the run folder when ``test`` ends.

    Args:
        output_dir: where to write; None uses the trainer's log folder (``runs/<name>/version_N``).
    """

    def __init__(self, output_dir: str | None = None) -> None:
        self.output_dir = output_dir
        self.metrics: MetricCollection | None = None

    def report_dir(self, trainer: Trainer) -> Path:
        folder = self.output_dir or trainer.log_dir or trainer.default_root_dir
        return Path(folder)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.metrics = _report_metrics(pl_module.hparams.num_classes).to(pl_module.device)
        self._started = time.perf_counter()

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.metrics is not None:
            self.metrics.update(outputs["logits"], batch["label"])

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.metrics is None:
            return
        self._results = {k: v.cpu() for k, v in self.metrics.compute().items()}
        self.metrics.reset()

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or self.metrics is None:
            return
        folder = self.report_dir(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        class_names = list(getattr(pl_module, "class_names", None) or range(pl_module.hparams.num_classes))
        results = self._results
        confusion = results["confusion"].long()
        scalars = {k: _number(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}
        scalars.update(
            {
                "test_precision_macro": _number(results["precision_macro"]),
                "test_recall_macro": _number(results["recall_macro"]),
                "test_f1_macro": _number(results["f1_macro"]),
                "test_f1_weighted": _number(results["f1_weighted"]),
                "test_samples": int(confusion.sum()),
                "test_seconds": round(time.perf_counter() - self._started, 3),
                **checkpoint_info(trainer.ckpt_path),
            }
        )
        write_json(folder / "metrics.json", scalars)
        write_classification_report(folder / "classification_report.csv", class_names, results, confusion)
        write_confusion_matrix(folder / "confusion_matrix.csv", class_names, confusion)


def checkpoint_info(ckpt_path: str | None) -> dict[str, Any]:
    """Which checkpoint was evaluated, and after how many epochs and steps of training."""
    if not ckpt_path:
        return {"checkpoint": None}
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    return {"checkpoint": str(ckpt_path), "epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step")}


def write_json(path: Path, values: dict[str, Any]) -> None:
    """Write ``values`` as JSON, merging into an existing file (validate and test share metrics.json)."""
    current = json.loads(path.read_text()) if path.is_file() else {}
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
