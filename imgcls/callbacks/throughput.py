"""Images per second and seconds per epoch, logged for training and evaluation every epoch."""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict) and "label" in batch:
        return len(batch["label"])
    if isinstance(batch, list | tuple) and batch:
        return len(batch[0])
    return 0


class ImagesPerSecond(Callback):
    """Log ``<stage>_images_per_sec`` and ``<stage>_epoch_sec`` for train, val and test.

    (Lightning's ``ThroughputMonitor`` counts samples per step and FLOPs, but from batch to batch,
    leaving out the time a loader makes the next batch wait: here the input pipeline counts.)

    Times are wall-clock from the first batch request to the end of the epoch, so the input pipeline
    counts; the validation run inside a training epoch is subtracted from the training figures.
    CUDA is synchronized at the boundaries so queued kernels are not left out. Configured in YAML
    (``trainer.callbacks``) like any callback of its own.
    """

    def __init__(self) -> None:
        self._start: dict[str, float] = {}
        self._images: dict[str, int] = {}
        self._val_seconds_in_train = 0.0

    @staticmethod
    def _now(pl_module: LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def _begin(self, stage: str, pl_module: LightningModule) -> None:
        self._images[stage] = 0
        self._start[stage] = self._now(pl_module)

    def _count(self, stage: str, batch: Any) -> None:
        self._images[stage] += _batch_size(batch)

    def _finish(self, stage: str, pl_module: LightningModule, subtract: float = 0.0) -> float:
        seconds = self._now(pl_module) - self._start.pop(stage) - subtract
        images = self._images[stage]
        if images:
            # several processes: the slowest one's seconds, and the images per second of all of them
            pl_module.log(
                f"{stage}_epoch_sec", seconds, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max"
            )
            pl_module.log(
                f"{stage}_images_per_sec",
                images / max(seconds, 1e-9),
                on_step=False,
                on_epoch=True,
                sync_dist=True,
                reduce_fx="sum",
            )
        return seconds

    # --- training -------------------------------------------------------------------------------

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # a fit resumed from a mid-epoch checkpoint (Lightning's hpc_ckpt_N) skips the epoch's start
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val_seconds_in_train = 0.0
        self._begin("train", pl_module)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._count("train", batch)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "train" in self._start:
            self._finish("train", pl_module, subtract=self._val_seconds_in_train)

    # --- evaluation -----------------------------------------------------------------------------

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._begin("val", pl_module)

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.sanity_checking:
            self._count("val", batch)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "val" in self._start:
            seconds = self._finish("val", pl_module)
            if trainer.state.fn == TrainerFn.FITTING:
                self._val_seconds_in_train += seconds

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin("test", pl_module)

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._count("test", batch)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "test" in self._start:
            self._finish("test", pl_module)
