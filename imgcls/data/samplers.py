"""The training order: a permutation that depends on the run's seed and the epoch, and on nothing else.

``torch``'s ``RandomSampler`` draws each epoch's permutation from the global random generator, which
the model's augmentation and dropout also draw from: a run resumed from a checkpoint would then see
another order than the run it continues. Here epoch ``e`` of a run seeded ``s`` is always the same
permutation, whichever process, resume or code path (cached or streamed) serves it. Lightning calls
``set_epoch`` before each epoch.

``ResumableLoader`` is the training loader: Lightning saves its state (the batches of the epoch already
served) in a checkpoint written mid-epoch, and a fit resumed from it skips those batches' indices
without reading them, so it goes on with the very batch the interrupted run would have trained next.
Its workers (``shield_worker``) leave SIGTERM and Ctrl-C to the main process, which stops between two
batches and shuts them down.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Sampler, SequentialSampler


def shield_worker(worker_id: int) -> None:
    """A loader worker's ``worker_init_fn``: it ignores SIGTERM and SIGINT.

    Both often reach a whole process group (a cancelled Slurm step, Ctrl-C in a terminal); a worker
    killed by one fails the batch in hand with a traceback per worker, where the main process would have
    finished the batch, saved its place and shut the workers down (``TerminationCheckpoint``). A worker
    still ends with the main process: torch's watchdog stops it when its parent is gone.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_seed() -> int:
    """The seed of this run's random generators (``seed_everything``'s, when it was called)."""
    return torch.initial_seed() % 2**63


class SeededShuffle(Sampler[int]):
    """Positions ``0..length-1`` in an order drawn from ``seed`` and the epoch.

    Args:
        length: number of samples.
        seed: the run's seed; None takes ``run_seed()`` when the sampler is made.
    """

    def __init__(self, length: int, seed: int | None = None) -> None:
        self.length = length
        self.seed = run_seed() if seed is None else seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


class EpochBatches(Sampler[list[int]]):
    """Batches of positions; shuffled with the run's permutation of each epoch when ``shuffle``.

    ``resume_at(epoch, batches)`` makes the next iteration over ``epoch`` start after its first
    ``batches`` batches; an iteration over any other epoch is whole.
    """

    def __init__(self, length: int, batch_size: int, shuffle: bool, drop_last: bool) -> None:
        inner = SeededShuffle(length) if shuffle else SequentialSampler(range(length))
        self.batches = BatchSampler(inner, batch_size, drop_last)
        self.drop_last = drop_last  # read as a BatchSampler's: a loader over this one reports False
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch: the shuffle of epoch ``epoch``."""
        self.epoch = epoch
        if isinstance(self.batches.sampler, SeededShuffle):
            self.batches.sampler.set_epoch(epoch)

    def resume_at(self, epoch: int, batches: int) -> None:
        self._resume = (epoch, batches)

    def skipped(self) -> int:
        """How many batches the next iteration leaves out (read before it starts)."""
        return self._resume[1] if self._resume is not None and self._resume[0] == self.epoch else 0

    def __iter__(self) -> Iterator[list[int]]:
        # a generator: the permutation is drawn at the first batch, after Lightning's set_epoch
        skip = self.skipped()
        self._resume = None
        yield from itertools.islice(self.batches, skip, None)

    def __len__(self) -> int:
        return len(self.batches)


class ResumableLoader(DataLoader):
    """A DataLoader over ``EpochBatches`` that Lightning can save and restore in the middle of an epoch.

    Its state is the epoch and the number of batches served of it; Lightning stores it in every
    checkpoint (``state_dict``) and hands it back on resume (``load_state_dict``). An epoch served to
    its end saves nothing to skip, so a resume from an end-of-epoch checkpoint trains whole epochs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._served = 0

    @property
    def epoch_batches(self) -> EpochBatches:
        order = self.batch_sampler if isinstance(self.batch_sampler, EpochBatches) else self.sampler
        if not isinstance(order, EpochBatches):
            raise TypeError("a ResumableLoader draws its batches from an EpochBatches sampler")
        return order

    def __iter__(self) -> Iterator[Any]:
        self._served = self.epoch_batches.skipped()
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        served = self._served if self._served < len(self) else 0
        return {"epoch": self.epoch_batches.epoch, "batches_served": served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch_batches.resume_at(int(state.get("epoch", 0)), int(state.get("batches_served", 0)))
