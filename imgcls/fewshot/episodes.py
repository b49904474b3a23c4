"""Seeded N-way K-shot episodes over the labels of any split.

Episode ``i`` is drawn by its own generator, ``numpy.random.default_rng([seed, i])``: it is the same
whether 1 or 600 episodes are drawn, in any order, in one process or split over many.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from imgcls.errors import ConfigError, DataError


@dataclass(frozen=True)
class Episodes:
    """A batch of episodes as arrays of positions into the split (episode labels are the class order).

    Attributes:
        indices: (E,) episode numbers.
        classes: (E, N) split labels of each episode's classes; class ``classes[e, n]`` is episode label n.
        support: (E, N, K) positions of the support images of each class.
        query: (E, N, Q) positions of the query images of each class.
    """

    indices: np.ndarray
    classes: np.ndarray
    support: np.ndarray
    query: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, which: slice | np.ndarray) -> Episodes:
        return Episodes(self.indices[which], self.classes[which], self.support[which], self.query[which])

    @property
    def positions(self) -> np.ndarray:
        """Every position any of the episodes uses, sorted, each once."""
        return np.unique(np.concatenate([self.support.ravel(), self.query.ravel()]))


class EpisodeSampler:
    """Draws N-way K-shot episodes with Q queries per class from the labels of one split.

    Classes with at least K + Q images are eligible; each episode takes N distinct eligible classes
    and, per class, K + Q distinct images, the first K the support and the rest the queries.

    Args:
        labels: the label of every image of the split, in the split's order.
        n_way: classes per episode.
        k_shot: support images per class.
        q_query: query images per class.
        seed: the episodes' seed (episode i depends only on seed and i).
        class_names: names of the labels, for the error messages.
        split: the split's name, for the error messages.

    Raises:
        ConfigError: a count is not positive, or ``n_way`` exceeds the classes of the split.
        DataError: fewer than ``n_way`` classes have K + Q images; the message names the short ones.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        n_way: int,
        k_shot: int,
        q_query: int,
        seed: int = 0,
        class_names: Sequence[str] | None = None,
        split: str = "test",
    ) -> None:
        for name, value, least in (("n_way", n_way, 2), ("k_shot", k_shot, 1), ("q_query", q_query, 1)):
            if value < least:
                raise ConfigError(f"--{name} must be {least} or more, got {value}")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_way, self.k_shot, self.q_query, self.seed = n_way, k_shot, q_query, seed
        present, counts = np.unique(self.labels, return_counts=True)

        def name(label: int) -> str:
            return str(class_names[label]) if class_names is not None else str(label)

        # every image of the dataset is one option away, unless the split is that already
        other_split = ", or use every image of the dataset (--split all)" if split != "all" else ""
        if n_way > len(present):
            raise ConfigError(
                f"--n_way {n_way} is more than the {len(present)} classes of the {split} split; lower --n_way "
                f"to {len(present)} or less{other_split}"
            )
        needed = k_shot + q_query
        eligible = counts >= needed
        self.eligible_classes = present[eligible]
        if len(self.eligible_classes) < n_way:
            short = sorted(zip(present[~eligible], counts[~eligible], strict=True), key=lambda c: -c[1])
            listed = ", ".join(f"{name(int(label))} ({count})" for label, count in short[:12])
            more = f" and {len(short) - 12} more" if len(short) > 12 else ""
            raise DataError(
                f"{n_way}-way episodes with {k_shot} shots + {q_query} queries need {needed} images in each of "
                f"{n_way} classes, but only {len(self.eligible_classes)} classes of the {split} split have that "
                f"many; too few images in: {listed}{more}. Lower --k_shot or --q_query, or --n_way{other_split}."
            )
        # positions of each eligible class in the split, ascending: the draws index these
        order = np.argsort(self.labels, kind="stable")
        starts = np.searchsorted(self.labels[order], self.eligible_classes)
        self._members = [order[s : s + c] for s, c in zip(starts, counts[eligible], strict=True)]

    def episode(self, index: int) -> Episodes:
        """Episode ``index`` alone, as a batch of one."""
        return self.sample([index])

    def sample(self, indices: int | Iterable[int]) -> Episodes:
        """Episodes ``range(indices)``, or the given episode numbers, as one batch."""
        numbers = np.arange(indices) if isinstance(indices, int) else np.asarray(list(indices), np.int64)
        if numbers.size and numbers.min() < 0:
            raise ConfigError(f"episode numbers must be 0 or more, got {int(numbers.min())}")
        n, k, q = self.n_way, self.k_shot, self.q_query
        classes = np.empty((len(numbers), n), dtype=np.int64)
        drawn = np.empty((len(numbers), n, k + q), dtype=np.int64)
        for row, number in enumerate(numbers):
            rng = np.random.default_rng([self.seed, int(number)])
            chosen = rng.choice(len(self.eligible_classes), size=n, replace=False)
            classes[row] = self.eligible_classes[chosen]
            for way, c in enumerate(chosen):
                members = self._members[c]
                drawn[row, way] = members[rng.choice(len(members), size=k + q, replace=False)]
        return Episodes(numbers, classes, drawn[:, :, :k], drawn[:, :, k:])
