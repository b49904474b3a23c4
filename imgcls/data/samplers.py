"""The training order: a permutation that depends on the run's seed and the epoch, and on nothing else.

``torch``'s ``RandomSampler`` draws each epoch's permutation from the global random generator, which
the model's augmentation and dropout also draw from: a run resumed from a checkpoint would then see
another order than the run it continues. Here epoch ``e`` of a run seeded ``s`` is always the same
permutation, whichever process, resume or code path (cached or streamed) serves it. Lightning calls
``set_epoch`` before each epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


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
