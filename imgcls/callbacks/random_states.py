"""The random generators' states in every checkpoint, so that a resumed fit draws what the
uninterrupted one would have drawn."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


def collect_random_states() -> dict[str, Any]:
    """torch (CPU and every CUDA device), numpy and Python ``random`` states, as plain values and
    tensors (so that ``torch.load(weights_only=True)`` reads them)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict[str, Any]) -> None:
    """Set the generators to ``collect_random_states``' record."""
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RandomStates(Callback):
    """Save the random states with each checkpoint; give them back when a fit resumes from it.

    A checkpoint is written at the end of an epoch, after its validation; nothing draws from the
    generators between then and the next epoch's first batch (the training order comes from
    ``SeededShuffle``, not from them). So a fit resumed from the checkpoint, with the states set back
    at the start of its first epoch, draws the same augmentation and dropout as the run it continues;
    with ``trainer.deterministic`` its weights and metrics are the same. A checkpoint written in the
    middle of an epoch (``TerminationCheckpoint``) is resumed there, and its states are set back when
    training starts.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"states": collect_random_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("states")

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # a fit resumed in the middle of an epoch (a SIGTERM checkpoint) skips on_train_epoch_start;
        # nothing draws between here and its first batch
        if self._pending is not None and trainer.fit_loop.restarted_mid_epoch:
            restore_random_states(self._pending)
            self._pending = None

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # here, not when the checkpoint loads: the resumed fit's sanity check and loaders draw first
        if self._pending is not None:
            restore_random_states(self._pending)
            self._pending = None
