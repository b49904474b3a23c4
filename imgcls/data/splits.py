"""Seeded, stratified splits and balanced subsampling over integer class targets.

Every function here is pure: the same targets and seed give the same indices on any machine
(numpy's PCG64 generator is platform independent), and each class draws from its own stream so
that adding a class does not reshuffle the others.
"""

from __future__ import annotations

import numpy as np


def _class_rng(seed: int, cls: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, cls, purpose])


def _count(n: int, fraction: float) -> int:
    """How many of ``n`` samples go to a split of ``fraction``: at least one when possible."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(n * fraction)))


def stratified_split(
    indices: np.ndarray, targets: np.ndarray, fraction: float, seed: int, purpose: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (rest, held_out), holding out ``fraction`` of each class.

    Args:
        indices: sample indices to split.
        targets: class of every sample in the whole pool (indexed by ``indices``).
        fraction: share of each class held out, in [0, 1).
        seed: split seed.
        purpose: distinguishes independent splits made with the same seed (test vs val).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"split fraction must be in [0, 1), got {fraction}")
    indices = np.sort(np.asarray(indices, dtype=np.int64))
    rest, held = [], []
    for cls in np.unique(targets[indices]):
        members = indices[targets[indices] == cls]
        members = members[_class_rng(seed, int(cls), purpose).permutation(len(members))]
        k = _count(len(members), fraction)
        held.append(members[:k])
        rest.append(members[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(held))


def cap_per_class(
    indices: np.ndarray, targets: np.ndarray, max_per_class: int | None, seed: int
) -> np.ndarray:
    """Keep at most ``max_per_class`` randomly chosen samples of each class (balanced subsampling)."""
    indices = np.sort(np.asarray(indices, dtype=np.int64))
    if max_per_class is None:
        return indices
    if max_per_class < 1:
        raise ValueError(f"max_per_class must be at least 1, got {max_per_class}")
    kept = []
    for cls in np.unique(targets[indices]):
        members = indices[targets[indices] == cls]
        chosen = _class_rng(seed, int(cls), purpose=99).permutation(len(members))[:max_per_class]
        kept.append(members[chosen])
    return np.sort(np.concatenate(kept))
