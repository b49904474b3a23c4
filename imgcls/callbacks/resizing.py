"""Progressive resizing: train the early epochs on smaller images, the last ones at full size.

A convolutional network with global pooling takes any input size, and an epoch at half the side
costs about a quarter of the arithmetic. The training batches are scaled down on the model's device
after augmentation (``ImageDataModule.set_train_scale``); validation and test always see full size.
"""

from __future__ import annotations

import logging

from lightning.pytorch import Callback, LightningModule, Trainer

from imgcls.errors import ConfigError

log = logging.getLogger(__name__)


class ProgressiveResizing(Callback):
    """Scale the training images from ``start_scale`` of their side at epoch 0 up to full size.

    The scale grows linearly and reaches 1 at epoch ``full_size_epoch``; every later epoch trains at
    full size. Sides are rounded to a multiple of ``multiple`` pixels.

    Args:
        start_scale: side of the first epoch's images as a share of the full side (0.5: 32 px of
            64); None turns progressive resizing off.
        full_size_epoch: first epoch at full size; below ``trainer.max_epochs`` so that the last
            epochs fit the model to the size it is tested at (a shorter run only warns).
        multiple: the sides are multiples of this many pixels.
    """

    def __init__(
        self, start_scale: float | None = None, full_size_epoch: int = 10, multiple: int = 8
    ) -> None:
        if start_scale is not None and not 0.0 < start_scale <= 1.0:
            raise ConfigError(
                f"progressive_resizing.start_scale must be in (0, 1] (0.5 starts at half the side) or null for off, "
                f"got {start_scale}"
            )
        if full_size_epoch < 1 or multiple < 1:
            raise ConfigError(
                "progressive_resizing.full_size_epoch and progressive_resizing.multiple must be >= 1, "
                f"got {full_size_epoch} and {multiple}"
            )
        self.start_scale = start_scale
        self.full_size_epoch = full_size_epoch
        self.multiple = multiple

    def scale(self, epoch: int) -> float:
        """Share of the full side that epoch ``epoch`` trains at."""
        if self.start_scale is None or epoch >= self.full_size_epoch:
            return 1.0
        return self.start_scale + (1.0 - self.start_scale) * epoch / self.full_size_epoch

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.start_scale is None:
            return
        max_epochs = trainer.max_epochs
        if max_epochs not in (None, -1) and self.full_size_epoch >= max_epochs:
            log.warning(
                "progressive_resizing.full_size_epoch is %d but trainer.max_epochs is %d: no epoch trains at the "
                "size the model is tested at; set it below %d for more than a trial run",
                self.full_size_epoch,
                max_epochs,
                max_epochs,
            )
        if not hasattr(trainer.datamodule, "set_train_scale"):
            raise ConfigError(
                "progressive_resizing needs an imgcls datamodule (it scales the batches in data.transform_batch)"
            )

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.start_scale is not None:
            trainer.datamodule.set_train_scale(self.scale(trainer.current_epoch), self.multiple)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.start_scale is not None:
            side = trainer.datamodule.last_train_side
            if side is not None:
                pl_module.log("train_image_side", float(side), on_step=False, on_epoch=True)
