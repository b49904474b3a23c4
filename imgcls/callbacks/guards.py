"""Settings that would only fail at the end of a fit, refused before its first step."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from imgcls.errors import ConfigError


class ValidationWithinRun(Callback):
    """Refuse a ``trainer.max_steps`` that ends the fit before its first validation.

    Early stopping and the best checkpoint watch a validation metric: a run that never validates ends
    in Lightning's error at its last step, without a checkpoint of the steps it trained.
    """

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.max_steps < 0 or trainer.val_check_batch == float("inf"):
            return
        watchers = [
            c.monitor
            for c in trainer.callbacks
            if isinstance(c, EarlyStopping | ModelCheckpoint) and c.monitor and c.monitor.startswith("val")
        ]
        first = int(trainer.val_check_batch) * (trainer.check_val_every_n_epoch or 1)
        if watchers and trainer.max_steps < first and trainer.global_step == 0:
            raise ConfigError(
                f"trainer.max_steps {trainer.max_steps} ends the fit before its first validation, after "
                f"{first} training batches, and {watchers[0]} is watched by early stopping and the best "
                f"checkpoint: add --trainer.val_check_interval {trainer.max_steps} (or fewer) to validate "
                "within the run, or raise trainer.max_steps"
            )
