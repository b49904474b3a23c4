"""Progress for batch jobs: one plain line per epoch where a progress bar would print nothing useful."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar

# what a line shows, in this order, when the run logs it
LINE_METRICS = (
    ("train_loss_epoch", "train_loss"),
    ("train_acc", "train_acc"),
    ("val_loss", "val_loss"),
    ("val_acc", "val_acc"),
)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class EpochLines(ProgressBar):
    """A progress bar for output that is not a terminal: one line per finished epoch.

    Redirected to a file (every Slurm job), a live progress bar writes nothing readable until the end;
    this writes, after each epoch: epoch, train and validation loss and accuracy, training images per
    second (from ``ImagesPerSecond`` when it runs), the epoch's seconds and the estimated time left.
    The CLI uses it in place of the configured progress bar when standard output is not a terminal.

    Args:
        stream: where lines go; None is standard output at the time of printing.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream
        self._enabled = True
        self._epoch_started = 0.0
        self._epoch_seconds: list[float] = []

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_seconds = []
        self._epoch_started = time.perf_counter()  # a mid-epoch resume skips the epoch's start

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        seconds = time.perf_counter() - self._epoch_started
        self._epoch_seconds.append(seconds)
        self.write(self.epoch_line(trainer, seconds))

    def epoch_line(self, trainer: Trainer, seconds: float) -> str:
        """``epoch 3/12  train_loss 0.8123  ...  train 312.4 img/s  41.2 s  ETA 6m10s``."""
        metrics = trainer.callback_metrics
        parts = [
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs if trainer.max_epochs != -1 else '?'}"
        ]
        for key, label in LINE_METRICS:
            value = metrics.get(key)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                parts.append(f"{label} {float(value):.4f}")
        speed = metrics.get("train_images_per_sec")
        if isinstance(speed, torch.Tensor):
            parts.append(f"train {float(speed):.1f} img/s")
        parts.append(f"{seconds:.1f} s")
        remaining = (trainer.max_epochs or 0) - trainer.current_epoch - 1
        if trainer.max_epochs not in (None, -1) and remaining > 0:
            mean = sum(self._epoch_seconds) / len(self._epoch_seconds)
            parts.append(f"ETA {_duration(mean * remaining)}")
        return "  ".join(parts)

    def write(self, line: str) -> None:
        stream = self.stream or sys.stdout
        print(line, file=stream, flush=True)

    def print(self, *args: Any, **kwargs: Any) -> None:
        print(*args, file=self.stream or sys.stdout, flush=True, **kwargs)
