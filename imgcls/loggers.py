"""Loggers of evaluation commands: their scalars land at the step of the checkpoint they evaluate.

``validate``, ``test`` and ``predict`` run outside the fit loop, where Lightning's step and epoch are 0:
logged as they are, a test of epoch 11's checkpoint would draw its point at step 0. These loggers
record every value at one given step (the CLI gives the step where the fit logged the checkpoint's
epoch), with the checkpoint's epoch as ``epoch``. The CLI
points them at a subfolder of the run (``version_N/test``), which TensorBoard shows as a run of its own
beside the fit's curves, never on them.

A resumed ``fit`` continues its run's CSV history (``keep_history``) instead of starting it anew.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from imgcls.runs import METRICS_CSV


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


def keep_history(loggers: list[Logger], upto_step: int | None) -> None:
    """Let a resumed fit continue the CSV log of the run instead of starting it anew.

    Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts; the rows the run had
    logged up to the checkpoint are handed back to it, to be written first. Rows after the
    checkpoint's global step belong to epochs that the resumed run repeats, and are dropped.
    """
    for logger in loggers:
        if not isinstance(logger, CSVLogger) or rank_zero_only.rank != 0:
            continue
        path = Path(logger.log_dir) / METRICS_CSV
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
        # the checkpoint's own epoch logged at steps before its global step; from that step on, the
        # rows belong to epochs the resumed run trains again
        rows = [r for r in rows if upto_step is None or r.get("step", 0) < upto_step]
        for row in rows:
            for key in ("step", "epoch"):
                if key in row:
                    row[key] = int(row[key])
        logger.experiment.metrics[:0] = rows
