"""Loggers of evaluation commands: their scalars land at the step of the checkpoint they evaluate.

``validate``, ``test`` and ``predict`` run outside the fit loop, where Lightning's step and epoch are 0:
logged as they are, a test of epoch 11's checkpoint would draw its point at step 0. These loggers
record every value at one given step (the CLI gives the step where the fit logged the checkpoint's
epoch), with the checkpoint's epoch as ``epoch``. The CLI
points them at a subfolder of the run (``version_N/test``), which TensorBoard shows as a run of its own
beside the fit's curves, never on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger


class _AtCheckpoint:
    """Mixin: log every metric at ``checkpoint_step``, with ``epoch`` set to ``checkpoint_epoch``."""

    def __init__(
        self, *args: Any, checkpoint_step: int = 0, checkpoint_epoch: int | None = None, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.checkpoint_step = checkpoint_step
        self.checkpoint_epoch = checkpoint_epoch

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        if "epoch" in metrics and self.checkpoint_epoch is not None:
            metrics["epoch"] = self.checkpoint_epoch
        super().log_metrics(metrics, self.checkpoint_step)


class EvaluationTensorBoardLogger(_AtCheckpoint, TensorBoardLogger):
    """``TensorBoardLogger`` that records at the evaluated checkpoint's step (see the module)."""


class EvaluationCSVLogger(_AtCheckpoint, CSVLogger):
    """``CSVLogger`` that records at the evaluated checkpoint's step (see the module)."""
