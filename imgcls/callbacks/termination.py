"""``TerminationCheckpoint``: a run stopped by SIGTERM or Ctrl-C mid-epoch keeps the batches it trained.

On SIGTERM (``kill``, ``timeout``, Kubernetes, a cancelled Slurm job) Lightning finishes the batch in hand
and raises ``SIGTERMException`` between two batches. A first Ctrl-C (SIGINT) does the same here, where
Python would raise ``KeyboardInterrupt`` wherever the run stands (inside an optimizer step, say); a second
one stops at once. This callback then writes ``last.ckpt`` as the run stands: weights, optimizer,
schedule, loop counters, random states and the training loader's place in the epoch
(``imgcls.data.samplers.ResumableLoader``), so that ``fit --ckpt_path last`` goes on with the next batch
and ends with the weights of a run that was never stopped. (The loader's workers ignore both signals,
``imgcls.data.samplers.shield_worker``: sent to the whole process group, they reach the workers too,
which would otherwise die under the batch in hand.)
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)
LAST = "last"
SIGNAL_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C (SIGINT)"}


class TerminationCheckpoint(Callback):
    """Write ``last.ckpt`` mid-epoch when SIGTERM or Ctrl-C stops a training epoch whose loader can resume.

    ``signum`` is the signal that stopped the run (None while none has).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._trainer: Trainer | None = None
        self._previous_sigint: object = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            self._trainer = trainer
            self._previous_sigint = signal.signal(signal.SIGINT, self._first_ctrl_c)

    def _first_ctrl_c(self, signum: int, frame: FrameType | None) -> None:
        # Lightning's SIGTERM flag: it stops between two batches, a validation loop at its next batch
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once
        self.signum = signal.SIGINT
        if self._trainer is not None:
            self._trainer._signal_connector.received_sigterm = True
        print(
            "\nimgcls: Ctrl-C: stopping after the batch in hand (Ctrl-C again stops at once)", file=sys.stderr
        )

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._restore_sigint()

    def _restore_sigint(self) -> None:
        if self._trainer is not None:
            previous = self._previous_sigint
            signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
            self._trainer = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore_sigint()
        if not isinstance(exception, SIGTERMException):
            return
        self.signum = self.signum or signal.SIGTERM
        if not trainer.training or trainer.sanity_checking:
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
