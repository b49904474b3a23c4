"""Report a fit's metric to its optuna trial every epoch, and stop the fit when the trial is pruned."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from imgcls.optuna_storage import open_trial

log = logging.getLogger(__name__)


class OptunaPruning(Callback):
    """The link between one fit and its trial of an optuna study (``imgcls sweep`` with ``search:``
    adds it to each trial's command line).

    After each validation, rank zero reports ``metric`` at the epoch; when the study's pruner gives up
    on the trial, the fit stops (all ranks) after that epoch, like early stopping, and the trial's
    ``pruned_at_epoch`` attribute tells the sweep. The study is opened from its storage, so the fit
    may run in another process, or on another node, than the sweep.

    Args:
        storage: the study's storage: a database URL, or a ``.db`` (SQLite) or journal file.
        study_name: the study's name (the sweep's).
        trial_number: the trial this fit runs.
        metric: the logged metric to report (``val_acc``...).
        pruner: ``{class_path, init_args}`` of the study's pruner, None for optuna's default.
    """

    def __init__(
        self,
        storage: str,
        study_name: str,
        trial_number: int,
        metric: str = "val_acc",
        pruner: dict | None = None,
    ) -> None:
        self.storage, self.study_name, self.trial_number = storage, study_name, trial_number
        self.metric, self.pruner = metric, pruner
        self._trial: Any = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            self._trial = open_trial(self.storage, self.study_name, self.trial_number, self.pruner)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero and self._trial is not None:
            value = trainer.callback_metrics.get(self.metric)
            if value is None:
                log.warning(
                    "optuna: %s was not logged; nothing reported at epoch %d",
                    self.metric,
                    trainer.current_epoch,
                )
            else:
                self._trial.report(float(value), step=trainer.current_epoch)
                prune = self._trial.should_prune()
                if prune:
                    self._trial.set_user_attr("pruned_at_epoch", trainer.current_epoch)
                    log.info(
                        "optuna: trial %d pruned at epoch %d (%s %.4f)",
                        self.trial_number,
                        trainer.current_epoch,
                        self.metric,
                        float(value),
                    )
        if trainer.strategy.broadcast(prune):
            trainer.should_stop = True
