"""TensorBoard reports during training: validation confusion matrices, per-class scores, a batch grid, hparams.

Figures go only to a ``TensorBoardLogger``; per-class scalars go through ``LightningModule.log`` and so
reach every logger. Learning rates are Lightning's ``LearningRateMonitor``'s; throughput is
``imgcls.throughput``'s.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torchmetrics import MetricCollection

from imgcls.analysis import plots
from imgcls.reporting import classification_metrics

log = logging.getLogger(__name__)

# config sections and keys that say how a run was computed, not what was computed: left out of hparams
NOT_HPARAMS = (
    "trainer.callbacks",
    "trainer.logger",
    "trainer.plugins",
    "trainer.profiler",
    "config",
    "ckpt_path",
)
# metrics shown in the hparams tab; test values appear once `test` has run on the same run folder
HPARAM_METRICS = ("train_loss_epoch", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def _tensorboard_logger(trainer: Trainer) -> TensorBoardLogger | None:
    return next((logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)), None)


def _tensorboard(trainer: Trainer) -> Any:
    """The SummaryWriter of the trainer's TensorBoardLogger (rank zero), or None."""
    logger = _tensorboard_logger(trainer)
    return logger.experiment if logger is not None and trainer.is_global_zero else None


def flatten_config(values: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"a.b.c": value}`` with values TensorBoard's hparams accept (str, number, bool)."""
    flat: dict[str, Any] = {}
    if isinstance(values, dict):
        for key, value in values.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if name in NOT_HPARAMS:
                continue
            # class_path/init_args pairs read better as "model.optimizer" = "AdamW", "model.optimizer.lr" = ...
            if isinstance(value, dict) and "class_path" in value:
                flat[name] = str(value["class_path"]).rsplit(".", 1)[-1]
                flat.update(flatten_config(value.get("init_args") or {}, name))
            else:
                flat.update(flatten_config(value, name))
        return flat
    if isinstance(values, bool | int | float | str):
        return {prefix: values}
    return {prefix: str(values)}


class TensorBoardReports(Callback):
    """Evaluation figures and scalars in TensorBoard while training.

    Args:
        confusion_matrix: log the validation confusion matrix (counts and row percentages) as a
            figure every validation epoch.
        per_class_metrics: log per-class precision, recall and F1 every validation epoch
            (``val_precision/<class>``...).
        batch_grid: images of the first training batch to draw, with their labels, un-normalized
            with the datamodule's mean and std (wrong normalization or channel order shows at a glance);
            0 draws none.
        hparams: fill TensorBoard's hparams tab with the run's resolved config and final metrics.
    """

    def __init__(
        self,
        confusion_matrix: bool = True,
        per_class_metrics: bool = True,
        batch_grid: int = 16,
        hparams: bool = True,
    ) -> None:
        self.confusion_matrix = confusion_matrix
        self.per_class_metrics = per_class_metrics
        self.batch_grid = batch_grid
        self.hparams = hparams
        self.metrics: MetricCollection | None = None
        self._grid_logged = False

    # --- validation: confusion matrix and per-class scores ----------------------------------------

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not (self.confusion_matrix or self.per_class_metrics):
            self.metrics = None
            return
        self.metrics = classification_metrics(pl_module.hparams.num_classes, averages=("none",))
        self.metrics = self.metrics.to(pl_module.device)

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.metrics is not None and isinstance(outputs, dict) and "logits" in outputs:
            self.metrics.update(outputs["logits"], batch["label"])

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.metrics is None:
            return
        results = self.metrics.compute()  # synchronized across processes: every rank calls it
        self.metrics = None
        names = [str(c) for c in getattr(pl_module, "class_names", range(pl_module.hparams.num_classes))]
        if self.per_class_metrics:
            for metric in ("precision", "recall", "f1"):
                values = {
                    f"val_{metric}/{name}": results[f"{metric}_none"][i] for i, name in enumerate(names)
                }
                # already synchronized; sync_dist only keeps Lightning from warning (a mean of equal values)
                pl_module.log_dict(values, on_step=False, on_epoch=True, sync_dist=True)
        writer = _tensorboard(trainer)
        if self.confusion_matrix and writer is not None and trainer.is_global_zero:
            figure = plots.plot_confusion_matrix(
                results["confusion"], names, title=f"Validation, epoch {trainer.current_epoch}"
            )
            writer.add_figure("val_confusion_matrix", figure, global_step=trainer.global_step)

    # --- a grid of the first training batch ---------------------------------------------------

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._grid_logged or self.batch_grid <= 0 or not trainer.is_global_zero:
            return
        self._grid_logged = True
        writer = _tensorboard(trainer)
        if writer is None or not isinstance(batch, dict):
            return
        images = batch["image"][: self.batch_grid]
        mean, std = getattr(trainer.datamodule, "normalization", (None, None))
        names = [str(c) for c in getattr(pl_module, "class_names", [])]
        labels = batch["label"][: self.batch_grid].tolist()
        titles = [names[label] if 0 <= label < len(names) else str(label) for label in labels]
        figure = plots.plot_image_grid(
            plots.to_display_images(images, mean, std),
            titles,
            columns=8,
            title=f"First training batch as the model sees it (augmented, {tuple(images.shape[1:])})",
        )
        writer.add_figure("train_batch", figure, global_step=trainer.global_step)

    # --- hparams tab ----------------------------------------------------------------------------

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        writer = _tensorboard(trainer)
        if not self.hparams or writer is None or not trainer.is_global_zero:
            return
        from torch.utils.tensorboard.summary import hparams

        params = self._run_hparams(trainer, pl_module)
        metrics = {
            f"hparams/{k}": float(v)
            for k, v in trainer.callback_metrics.items()
            if k in HPARAM_METRICS and isinstance(v, torch.Tensor) and v.numel() == 1
        }
        for name, value in metrics.items():
            writer.add_scalar(name, value, global_step=trainer.global_step)
        # every metric name is declared now; test values are written to the same tags after `test`
        declared = {f"hparams/{k}": metrics.get(f"hparams/{k}", float("nan")) for k in HPARAM_METRICS}
        experiment, start, end = hparams(params, declared)
        file_writer = writer._get_file_writer()
        for summary in (experiment, start, end):
            file_writer.add_summary(summary)
        writer.flush()

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        writer = _tensorboard(trainer)
        if not self.hparams or writer is None or not trainer.is_global_zero:
            return
        for name in ("test_loss", "test_acc"):
            value = trainer.callback_metrics.get(name)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                writer.add_scalar(f"hparams/{name}", float(value), global_step=trainer.global_step)
        writer.flush()

    @staticmethod
    def _run_hparams(trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        """The resolved config of the run (``config.yaml``) flattened; the model's hparams without one."""
        # the logger's own folder: trainer.log_dir would broadcast, and only rank zero is here
        logger = _tensorboard_logger(trainer)
        folder = logger.log_dir if logger is not None else None
        config_file = Path(folder) / "config.yaml" if folder else None
        if config_file is not None and config_file.is_file():
            config = yaml.safe_load(config_file.read_text()) or {}
        else:
            config = {"model": dict(pl_module.hparams)}
        params = flatten_config(config)
        params.pop("model.class_names", None)  # a list of names is no hyperparameter
        return params
