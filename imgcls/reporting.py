"""The test report: what a run folder holds after ``test`` and ``predict``, and what ``fit`` records.

``TestReportWriter`` is the one component that writes evaluation files. It accumulates
torchmetrics and per-sample predictions over the test loader (gathered across processes) and, on rank
zero, writes ``metrics.json``, ``classification_report.csv``, ``confusion_matrix.csv``/``.png``,
``predictions.csv``, ``examples.png`` and ``class_distribution.csv``/``.png`` into the run folder.
``PredictionWriter`` writes the top-k CSV of ``predict``; ``RunInfoWriter`` writes ``run_info.json``
during ``fit`` (dataset, parameters, GFLOPs, epoch times) so that ``imgcls compare`` need not rebuild models.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from imgcls.analysis import plots
from imgcls.analysis.runs import RUN_INFO
from imgcls.analysis.summary import count_gflops

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


def _number(value: Any) -> float | int | None:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _PredictionCollector:
    """Top-k predictions per sample, kept on the device until gathered from every process."""

    def __init__(self, top_k: int) -> None:
        self.top_k = top_k
        self.parts: dict[str, list[torch.Tensor]] = {"index": [], "label": [], "prob": [], "class": []}

    def update(self, probs: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> None:
        values, classes = probs.detach().float().topk(min(self.top_k, probs.shape[1]), dim=1)
        self.parts["index"].append(torch.as_tensor(index, device=probs.device).long())
        self.parts["label"].append(torch.as_tensor(labels, device=probs.device).long())
        self.parts["prob"].append(values)
        self.parts["class"].append(classes)

    def gather(self, pl_module: LightningModule) -> dict[str, np.ndarray]:
        """Concatenate, gather from every process (a collective: call on all ranks), drop duplicates.

        A distributed sampler repeats a few samples to give every process the same count; each sample
        is kept once.
        """
        k = min(self.top_k, pl_module.hparams.num_classes)
        empty = {
            "index": torch.zeros(0, dtype=torch.long),
            "label": torch.zeros(0, dtype=torch.long),
            "prob": torch.zeros(0, k),
            "class": torch.zeros(0, k, dtype=torch.long),
        }
        rows = {
            name: (torch.cat(parts) if parts else empty[name].to(pl_module.device))
            for name, parts in self.parts.items()
        }
        rows = {name: gather_rows(pl_module, tensor).cpu().numpy() for name, tensor in rows.items()}
        _, first = np.unique(rows["index"], return_index=True)
        return {name: values[np.sort(first)] for name, values in rows.items()}


def gather_rows(pl_module: LightningModule, tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (rows of any count) from every process; a no-op in a single process."""
    trainer = pl_module.trainer
    if trainer is None or trainer.world_size == 1:
        return tensor
    count = torch.tensor([tensor.shape[0]], device=tensor.device)
    counts = pl_module.all_gather(count).flatten().tolist()
    padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = pl_module.all_gather(padded)
    return torch.cat([gathered[rank, :n] for rank, n in enumerate(counts)])


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
    predictions: dict[str, np.ndarray], class_names: list[str], names: list[str]
) -> list[dict[str, Any]]:
    """One dict per sample: sample, index, true, predicted, probability, correct, top-k classes and probabilities.

    ``true`` and ``correct`` are empty for unlabeled samples (label -1).
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
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write dicts as CSV, columns in the first row's order."""
    with path.open("w", newline="") as f:
        if not rows:
            return
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


class TestReportWriter(Callback):
    """Write the test report into the run folder when ``test`` ends.

    Args:
        output_dir: where to write; None uses the trainer's log folder (``runs/<name>/version_N``),
            or its ``test-<name>`` subfolder for a checkpoint of that run other than ``best.ckpt``
            (``test-tta-<mode>``, ``test-<name>-tta-<mode>`` with test-time augmentation).
        top_k: classes (with probabilities) per sample in ``predictions.csv``.
        num_examples: images of the most confident right and of the most confident wrong
            predictions in ``examples.png``; 0 skips it.
        figures: draw the PNG figures (the CSV and JSON files are always written).
    """

    def __init__(
        self, output_dir: str | None = None, top_k: int = 5, num_examples: int = 8, figures: bool = True
    ) -> None:
        self.output_dir = output_dir
        self.top_k = top_k
        self.num_examples = num_examples
        self.figures = figures
        self.metrics: MetricCollection | None = None
        self._predictions: _PredictionCollector | None = None

    def report_dir(self, trainer: Trainer) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        folder = Path(trainer.log_dir or trainer.default_root_dir)
        checkpoint = Path(trainer.ckpt_path) if trainer.ckpt_path else None
        # the run folder holds the plain report of its best checkpoint; a test of another checkpoint
        # of the same run (last.ckpt), or with test-time augmentation, goes beside it instead of over it
        parts = []
        if (
            checkpoint is not None
            and checkpoint.stem != "best"
            and checkpoint.resolve().parent.parent == folder.resolve()
        ):
            parts.append(checkpoint.stem)
        tta = _tta_label(trainer.lightning_module)
        if tta:
            parts.append(tta)
        return folder / "-".join(["test", *parts]) if parts else folder

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.metrics = classification_metrics(pl_module.hparams.num_classes).to(pl_module.device)
        self._predictions = _PredictionCollector(self.top_k)

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.metrics is None or self._predictions is None:
            return
        self.metrics.update(outputs["logits"], batch["label"])
        self._predictions.update(outputs["logits"].softmax(dim=1), batch["label"], batch["index"])

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.metrics is None or self._predictions is None:
            return
        # both are collectives: every process takes part, only rank zero writes
        self._results = {k: v.cpu() for k, v in self.metrics.compute().items()}
        self.metrics.reset()
        self._gathered = self._predictions.gather(pl_module)
        self._predictions = None

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.metrics is None:
            return
        # trainer.log_dir broadcasts from rank zero: every process must ask for it
        folder = self.report_dir(trainer)
        if not trainer.is_global_zero:
            return
        folder.mkdir(parents=True, exist_ok=True)
        class_names = [
            str(c) for c in (getattr(pl_module, "class_names", None) or range(pl_module.hparams.num_classes))
        ]
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
                "test_time_augmentation": _tta_mode(pl_module),
                **checkpoint_info(trainer.ckpt_path),
            }
        )
        write_json(folder / "metrics.json", scalars)
        write_classification_report(folder / "classification_report.csv", class_names, results, confusion)
        write_confusion_matrix(folder / "confusion_matrix.csv", class_names, confusion)
        gathered = self._gathered
        rows = prediction_rows(gathered, class_names, _sample_names(trainer, "test", gathered["index"]))
        write_rows(folder / "predictions.csv", rows)
        distribution = self._class_distribution(trainer, class_names)
        if distribution is not None:
            distribution.to_csv(folder / "class_distribution.csv", index_label="class")
        if not self.figures:
            return
        plots.save_figure(
            plots.plot_confusion_matrix(confusion, class_names), folder / "confusion_matrix.png"
        )
        if distribution is not None:
            plots.save_figure(plots.plot_class_distribution(distribution), folder / "class_distribution.png")
        if self.num_examples > 0:
            self._write_examples(trainer, rows, folder / "examples.png")

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


class PredictionWriter(Callback):
    """Write ``predict``'s top-k classes and probabilities per image as a CSV in the run folder.

    Predicts on ``data.predict_root`` (a folder of unlabeled images) when set, else on the datamodule's
    predict split (its test split); ``true`` and ``correct`` columns are filled where labels exist.

    Args:
        output_dir: where to write; None uses the trainer's log folder (``runs/<name>/version_N``).
        filename: name of the CSV; with test-time augmentation its stem gets ``-tta-<mode>``
            (``predict-tta-dihedral.csv``), so the plain predictions stay.
        top_k: classes (with probabilities) per image.
    """

    def __init__(self, output_dir: str | None = None, filename: str = "predict.csv", top_k: int = 5) -> None:
        self.output_dir = output_dir
        self.filename = filename
        self.top_k = top_k
        self._predictions: _PredictionCollector | None = None
        self.path: Path | None = None

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._predictions = _PredictionCollector(self.top_k)

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._predictions is not None and isinstance(outputs, dict) and "probs" in outputs:
            self._predictions.update(outputs["probs"], outputs["label"], outputs["index"])

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._predictions is None:
            return
        gathered = self._predictions.gather(pl_module)
        self._predictions = None
        # trainer.log_dir broadcasts from rank zero: every process must ask for it
        folder = Path(self.output_dir or trainer.log_dir or trainer.default_root_dir)
        if not trainer.is_global_zero:
            return
        folder.mkdir(parents=True, exist_ok=True)
        class_names = [
            str(c) for c in (getattr(pl_module, "class_names", None) or range(pl_module.hparams.num_classes))
        ]
        rows = prediction_rows(gathered, class_names, _sample_names(trainer, "predict", gathered["index"]))
        filename = Path(self.filename)
        tta = _tta_label(pl_module)
        if tta:
            filename = filename.with_stem(f"{filename.stem}-{tta}")
        self.path = folder / filename
        write_rows(self.path, rows)
        log.info("wrote %d predictions to %s", len(rows), self.path)


class RunInfoWriter(Callback):
    """Record what comparing runs needs in ``run_info.json`` during ``fit``.

    Dataset (datamodule, folder name, classes, split sizes), backbone, parameters, GFLOPs per image at
    the size of the first training batch, and epoch times. Updated after every epoch, so an interrupted
    run still says what it did.

    Args:
        enabled: False writes nothing.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.info: dict[str, Any] = {}
        self._file: Path | None = None

    def _save(self, trainer: Trainer) -> None:
        path = self._file
        if path is None or not trainer.is_global_zero:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.info, indent=2, default=str) + "\n")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.enabled:
            return
        # trainer.log_dir broadcasts from rank zero: every process must ask for it
        folder = trainer.log_dir or trainer.default_root_dir
        self._file = path = Path(folder) / RUN_INFO if folder else None
        if not trainer.is_global_zero:
            return
        # a resumed fit extends the record of the run it continues
        self.info = json.loads(path.read_text()) if path is not None and path.is_file() else {}
        parameters = list(pl_module.parameters())
        self.info.update(
            {
                "backbone": pl_module.hparams.get("backbone"),
                "num_classes": pl_module.hparams.get("num_classes"),
                "in_chans": pl_module.hparams.get("in_chans"),
                "class_names": [str(c) for c in getattr(pl_module, "class_names", [])],
                "total_params": sum(p.numel() for p in parameters),
                "trainable_params": sum(p.numel() for p in parameters if p.requires_grad),
                "max_epochs": trainer.max_epochs,
                "world_size": trainer.world_size,
                **dataset_info(trainer.datamodule),
            }
        )
        self.info.setdefault("epoch_seconds", {})
        self._save(trainer)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self.enabled or not trainer.is_global_zero or "gflops" in self.info:
            return
        images = batch["image"] if isinstance(batch, dict) else batch[0]
        self.info["input_size"] = list(images.shape[1:])
        was_training = pl_module.training
        pl_module.eval()  # running statistics must not see the measuring pass
        try:
            model = pl_module._compute_logits if hasattr(pl_module, "_compute_logits") else pl_module
            self.info["gflops"] = count_gflops(model, images[:1].detach())
        except Exception as err:  # a counter failure must not stop training
            log.warning("could not count GFLOPs: %s", err)
            self.info["gflops"] = None
        finally:
            pl_module.train(was_training)
        self._save(trainer)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.enabled or not trainer.is_global_zero:
            return
        # wall time of the whole epoch, validation included (Lightning validates before this hook)
        self.info["epoch_seconds"][str(trainer.current_epoch)] = round(
            time.perf_counter() - self._epoch_started, 3
        )
        seconds = list(self.info["epoch_seconds"].values())
        self.info["epochs"] = len(seconds)
        self.info["seconds_per_epoch"] = round(sum(seconds) / len(seconds), 3)
        self.info["final"] = {
            k: _number(v)
            for k, v in trainer.callback_metrics.items()
            # per-class scores (``val_f1/<class>``) stay in TensorBoard
            if isinstance(v, torch.Tensor) and v.numel() == 1 and "/" not in k
        }
        self._save(trainer)


def dataset_info(datamodule: Any) -> dict[str, Any]:
    """Datamodule class, dataset name (its folder) and split sizes: what makes test numbers comparable."""
    if datamodule is None:
        return {}
    name = type(datamodule).__name__
    root = getattr(datamodule, "root", None)
    info: dict[str, Any] = {
        "datamodule": name,
        "dataset": Path(str(root)).name if root else name.removesuffix("DataModule"),
        "data_root": str(root) if root else None,
    }
    if hasattr(datamodule, "split_targets"):
        try:
            info["split_sizes"] = {s: len(datamodule.split_targets(s)) for s in ("train", "val", "test")}
        except Exception as err:  # only a record: a datamodule without these splits still trains
            log.debug("no split sizes: %s", err)
    return info


def _tta_mode(pl_module: LightningModule | None) -> str:
    return getattr(pl_module, "test_time_augmentation", "none")


def _tta_label(pl_module: LightningModule | None) -> str:
    """``tta-<mode>`` for the names of reports made with test-time augmentation, else empty."""
    mode = _tta_mode(pl_module)
    return "" if mode == "none" else f"tta-{mode}"


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
