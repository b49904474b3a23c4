"""TensorBoard reports during training: validation confusion matrices, per-class scores, a batch grid, hparams.

Figures go only to a ``TensorBoardLogger``; per-class scalars go through ``LightningModule.log`` and so
reach every logger. Learning rates are Lightning's ``LearningRateMonitor``'s; throughput is
``ImagesPerSecond``'s.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torchmetrics import MetricCollection

from imgcls import plots, runs
from imgcls.callbacks.reports import classification_metrics, run_folder, tta_mode

log = logging.getLogger(__name__)

# metrics shown in the hparams tab; test values appear once `test` has run on best.ckpt of the run
HPARAM_METRICS = ("train_loss_epoch", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def _tensorboard_logger(trainer: Trainer) -> TensorBoardLogger | None:
    return next((logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)), None)


def _tensorboard(trainer: Trainer) -> Any:
    """The SummaryWriter of the trainer's TensorBoardLogger (rank zero), or None."""
    logger = _tensorboard_logger(trainer)
    return logger.experiment if logger is not None and trainer.is_global_zero else None


def _logged_step(trainer: Trainer) -> int:
    """The step the trainer's loggers record now: an evaluation's is its checkpoint's."""
    logger = _tensorboard_logger(trainer)
    step = getattr(logger, "checkpoint_step", None)
    return trainer.global_step if step is None else step


def compared_hparams(config: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters a person compares between runs (the ``shown`` settings of
    ``imgcls.runs.RUN_SETTINGS``), from a run's resolved config.

    Values become what TensorBoard's hparams tab takes (str, number, bool); a ``class_path`` section
    becomes its class name; settings absent from the config are left out.
    """
    params: dict[str, Any] = {}
    for setting in runs.RUN_SETTINGS:
        if not setting.shown:
            continue
        value = runs.config_value(config, setting.path)
        if isinstance(value, dict) and "class_path" in value:
            value = str(value["class_path"]).rsplit(".", 1)[-1]
        if value is None:
            continue
        params[setting.name] = value if isinstance(value, bool | int | float | str) else str(value)
    return params


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
            writer.add_figure("val_confusion_matrix", figure, global_step=_logged_step(trainer))

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
        writer.add_figure("train_batch", figure, global_step=_logged_step(trainer))

    # --- hparams tab ----------------------------------------------------------------------------

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logger = _tensorboard_logger(trainer)
        if not self.hparams or logger is None or not trainer.is_global_zero:
            return
        params = self._run_hparams(logger, pl_module)
        values = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k in HPARAM_METRICS and isinstance(v, torch.Tensor) and v.numel() == 1
        }
        # every metric is declared now, at step 0; a later `test` writes its values at the tested
        # checkpoint's step, which the tab then shows
        declared = {f"hparams/{k}": values.get(k, float("nan")) for k in HPARAM_METRICS}
        logger.log_hyperparams(params, declared, step=0)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        folder = run_folder(trainer)  # a collective: every process asks
        if not self.hparams or not trainer.is_global_zero or trainer.ckpt_path is None:
            return
        if runs.evaluation_name("test", trainer.ckpt_path, folder, tta_mode(pl_module)) != "test":
            return  # the tab shows the plain test of best.ckpt, not of other checkpoints or views
        values = {
            f"hparams/{k}": float(v)
            for k, v in trainer.callback_metrics.items()
            if k in ("test_loss", "test_acc") and isinstance(v, torch.Tensor) and v.numel() == 1
        }
        if not values:
            return
        from torch.utils.tensorboard import SummaryWriter

        # into the fit's own folder, where the hparams tab looks; "hparams/" tags meet no curve
        with SummaryWriter(str(folder)) as writer:
            for name, value in values.items():
                writer.add_scalar(name, value, global_step=_logged_step(trainer))

    @staticmethod
    def _run_hparams(logger: TensorBoardLogger, pl_module: LightningModule) -> dict[str, Any]:
        """The compared hyperparameters of the run's ``config.yaml``; the model's own without one."""
        config_file = runs.run_dir_of_log_dir(logger.log_dir) / runs.CONFIG
        if config_file.is_file():
            config = yaml.safe_load(config_file.read_text()) or {}
        else:
            config = {"model": {k: v for k, v in pl_module.hparams.items() if k != "class_names"}}
        return compared_hparams(config)
