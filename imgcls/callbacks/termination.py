"""``TerminationCheckpoint``: a run stopped by SIGTERM in the middle of an epoch keeps the batches it trained.

On SIGTERM (``kill``, ``timeout``, Kubernetes, a cancelled Slurm job) Lightning finishes the batch in hand
and raises ``SIGTERMException`` between two batches. This callback then writes ``last.ckpt`` as the run
stands: weights, optimizer, schedule, loop counters, random states and the training loader's place in
the epoch (``imgcls.data.samplers.ResumableLoader``), so that ``fit --ckpt_path last`` goes on with the
next batch and ends with the weights of a run that was never stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)
LAST = "last"


class TerminationCheckpoint(Callback):
    """Write ``last.ckpt`` mid-epoch when SIGTERM stops a training epoch whose loader can resume."""

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or not trainer.training or trainer.sanity_checking:
            return
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if not 0 < done < trainer.num_training_batches:
            return  # between epochs: the end-of-epoch last.ckpt is already the run's state
        loader = trainer.train_dataloader
        if not (hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict")):
            return  # a loader that cannot skip what it served: the epoch would be trained twice
        folder = next(
            (
                c.dirpath
                for c in trainer.checkpoint_callbacks
                if isinstance(c, ModelCheckpoint) and c.filename == LAST
            ),
            None,
        )
        if folder is None:
            return
        path = Path(folder) / f"{LAST}.ckpt"
        trainer.save_checkpoint(path)
        log.info("saved %s after batch %d of epoch %d", path, done, trainer.current_epoch + 1)
