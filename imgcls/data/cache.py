"""A decoded uint8 image cache on disk, memory-mapped and served a whole batch at a time.

Decoding a JPEG with PIL costs far more than training needs to spend per image, so datasets that fit
a memory budget are decoded once into one ``(N, C, H, W)`` uint8 ``.npy`` file. Every later run and
every loader worker maps that file; a batch is one fancy-indexing copy, with no per-sample collate.

The file name carries a key over everything the pixels depend on (the dataset class, the source files
with their sizes and modification times, ``image_size``, ``in_chans``), so a changed, added or removed
file leads to a new key and a rebuild, never to stale pixels. Builds go to a temporary file that is
renamed into place under a file lock, so concurrent runs neither corrupt nor duplicate the work.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout
from torch.utils.data import DataLoader, Dataset

from imgcls.data.datasets import ArrayImageDataset, ImageFileDataset
from imgcls.data.samplers import EpochBatches, ResumableLoader, run_seed, shield_worker
from imgcls.errors import DataError, DiskFullError
from imgcls.storage import FULL, format_bytes, free_bytes, room_note

log = logging.getLogger(__name__)

CACHE_MODES = ("auto", "always", "never")
DEFAULT_CACHE_DIR = "~/.cache/imgcls"
_FORMAT_VERSION = 1  # bump when the cache layout or the decoding changes


def source_fingerprint(dataset: Dataset) -> dict[str, Any] | None:
    """What the decoded pixels of ``dataset`` depend on, or None when it cannot be cached.

    Files are identified by path, size and modification time (nanoseconds), which catches edits
    without reading every byte; in-memory arrays by a hash of their bytes. Files read by a custom
    ``reader`` (EuroSAT multispectral reflectance) are not cached.
    """
    if isinstance(dataset, ImageFileDataset):
        if dataset.reader is not None:  # a custom reader may give float images, which uint8 would ruin
            return None
        files = []
        for path in dataset.paths:
            stat = os.stat(path)
            files.append((path, stat.st_size, stat.st_mtime_ns))
        sources: Any = files
    elif isinstance(dataset, ArrayImageDataset):
        images = np.ascontiguousarray(dataset.images.numpy())
        sources = {"sha256": hashlib.sha256(images.data).hexdigest(), "shape": list(images.shape)}
    else:
        return None
    return {
        "format": _FORMAT_VERSION,
        "dataset": f"{type(dataset).__module__}.{type(dataset).__qualname__}",
        "image_size": dataset.image_size,
        "in_chans": dataset.in_chans,
        "targets": hashlib.sha256(np.asarray(dataset.targets, dtype=np.int64).tobytes()).hexdigest(),
        "sources": sources,
    }


def cache_key(fingerprint: dict[str, Any]) -> str:
    """A short, stable hash of a fingerprint."""
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def probe_image_shape(dataset: Dataset) -> tuple[int, int, int]:
    """Shape (C, H, W) of the dataset's first image, as its ``__getitem__`` returns it."""
    return tuple(dataset[0]["image"].shape)


class _CollateImages:
    """Collate for the cache build: a stacked uint8 batch, with a clear error for mixed sizes."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __call__(self, samples: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        for sample in samples:
            if tuple(sample["image"].shape) != self.shape:
                raise DataError(
                    f"images differ in size ({tuple(sample['image'].shape)} and {self.shape}); "
                    "set data.image_size so that every image is resized to one size"
                )
        images = torch.stack([s["image"] for s in samples])
        indices = torch.tensor([s["index"] for s in samples], dtype=torch.int64)
        return images, indices


def build_cache(
    dataset: Dataset, path: Path, num_workers: int = 0, batch_size: int = 256, source: Any = None
) -> None:
    """Decode every image of ``dataset`` into the ``.npy`` file ``path`` (atomically, under a lock).

    Another process that is building the same file (another rank of a distributed run, or another
    run) holds the lock; this one says so, waits, then finds the finished file and returns without
    decoding anything. ``source`` (the images' folder) is named in the line of the process that decodes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process (another rank or run) to finish the cache %s", path)
        lock.acquire()
    try:
        if not path.is_file():
            _remove_dead_partials(path)
            _decode_into(dataset, path, num_workers, batch_size, source)
    finally:
        lock.release()
        if not path.is_file():  # a failed build leaves nothing behind, not even its lock file
            Path(lock.lock_file).unlink(missing_ok=True)


def _decode_into(dataset: Dataset, path: Path, num_workers: int, batch_size: int, source: Any) -> None:
    """Write ``path`` beside itself, then rename it: readers see no file or a complete one."""
    shape = probe_image_shape(dataset)
    size_gb = len(dataset) * int(np.prod(shape)) / 1e9
    of = f" of {source}" if source is not None else ""
    log.info("decoding %d images%s into the cache %s (%.2f GB)", len(dataset), of, path, size_gb)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    needed = len(dataset) * int(np.prod(shape)) + HEADER_BYTES
    if free_bytes(path.parent) < needed:
        raise DiskFullError(_no_room(path, needed))
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(dataset), *shape))
        # reserve the blocks now: a memory-mapped write past the space a disk has is a SIGBUS that kills
        # the process without a word, where a reservation that fails is an error that can say why
        with open(tmp, "rb+") as handle:
            try:
                os.posix_fallocate(handle.fileno(), 0, os.path.getsize(tmp))
            except OSError as err:
                if err.errno in FULL:
                    raise DiskFullError(_no_room(path, needed)) from None
                if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system that cannot reserve
                    raise
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=_CollateImages(shape),
            # a loader draws its workers' base seed from the global RNG unless given a generator;
            # a run that builds the cache would then train on other shuffles than one that reuses it
            generator=torch.Generator(),
        )
        filled = 0
        for images, indices in loader:
            array[indices.numpy()] = images.numpy()
            filled += len(indices)
        if filled != len(dataset):
            raise DataError(f"cache build of {path} decoded {filled} of {len(dataset)} images")
        array.flush()
        del array
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


HEADER_BYTES = 4096  # more than the .npy header of any array here


def _no_room(path: Path, needed: int) -> str:
    return (
        f"the decoded-image cache {path.name} needs {format_bytes(needed)} in {path.parent}, but "
        f"{room_note(path.parent)}: set data.init_args.cache_dir to a folder with room, or "
        "data.init_args.cache to never (decode the images every epoch)"
    )


def _remove_dead_partials(path: Path) -> None:
    """Remove ``<cache>.<pid>.tmp`` files of builds whose process is gone (killed outright)."""
    for partial in path.parent.glob(f"{path.name}.*.tmp"):
        pid = partial.name[len(path.name) + 1 : -len(".tmp")]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            partial.unlink(missing_ok=True)


def remove_stale(folder: Path, prefix: str, keep: Path) -> None:
    """Delete older cache files of the same dataset, which a source change made unreachable."""
    for old in folder.glob(f"{prefix}-*.npy"):
        if old != keep:
            # a process still mapping the old file keeps its pages until it exits
            with contextlib.suppress(OSError):
                old.unlink()
            Path(str(old) + ".lock").unlink(missing_ok=True)


def cache_pool(
    pool: Dataset,
    *,
    name: str,
    owner: type,
    root: Path,
    cache_dir: Path,
    mode: str = "auto",
    max_gb: float = 4.0,
    variant: str = "",
    num_workers: int = 0,
    build: bool = True,
) -> Dataset:
    """``pool`` as a ``CachedImages`` when the cache mode and budget allow, else ``pool`` unchanged.

    Args:
        pool: one pool of a datamodule (``fit`` or ``test``), or a selection of one.
        name: the pool's name.
        owner: the datamodule class; its name starts the file name and is part of the key.
        root: the datamodule's folder; with the image size and channels it names the file's prefix.
        cache_dir: folder of the cache files.
        mode: one of ``CACHE_MODES``.
        max_gb: largest cache ``auto`` builds, in GB of decoded uint8 pixels.
        variant: names a selection of the pool (``max200-seed0``), which gets a file of its own
            beside the whole pool's.
        num_workers: loader processes that decode a missing cache.
        build: decode a missing cache; False returns ``pool`` unchanged instead (and logs nothing).
    """
    if mode == "never" or len(pool) == 0:
        return pool
    folder = getattr(pool, "folder", None) or root
    fingerprint = source_fingerprint(pool)
    if fingerprint is None:
        if build:
            log.info("data.cache=%s: the %s pool of %s cannot be cached; streaming it", mode, name, folder)
        return pool
    shape = probe_image_shape(pool)
    size_gb = len(pool) * int(np.prod(shape)) / 1e9
    if mode == "auto" and size_gb > max_gb:
        if build:
            log.info(
                "the %s pool of %s decodes to %.2f GB, over data.cache_max_gb=%.2f; streaming it from its files",
                name,
                folder,
                size_gb,
                max_gb,
            )
        return pool
    fingerprint["datamodule"] = f"{owner.__module__}.{owner.__qualname__}"
    # one prefix per folder, pool, size and channels: a rebuild after a source change finds and
    # removes the outdated file, and never touches a cache of the same folder at another size
    where = f"{Path(root).resolve()}|{fingerprint['image_size']}|{fingerprint['in_chans']}"
    origin = hashlib.sha256(where.encode()).hexdigest()[:8]
    # ("fit.max200-seed0", not "fit-max200...": the whole pool's prefix must not match the selection's)
    pool_name = f"{name}.{variant}" if variant else name
    prefix = f"{owner.__name__.lower()}-{pool_name}-{origin}"
    path = Path(cache_dir) / f"{prefix}-{cache_key(fingerprint)}.npy"
    if not path.is_file():
        if not build:
            return pool
        build_cache(pool, path, num_workers=num_workers, source=folder)
        remove_stale(Path(cache_dir), prefix, keep=path)
    names = [pool.sample_name(i) for i in range(len(pool))] if hasattr(pool, "sample_name") else None
    return CachedImages(path, pool.targets, names)


class CachedImages(Dataset):
    """A decoded uint8 image cache with its labels; indexing with a list returns a whole batch.

    Args:
        path: the ``.npy`` file of shape (N, C, H, W).
        targets: labels of the N images.
        names: optional readable names of the N images (file paths), for reports.
    """

    def __init__(self, path: str | Path, targets: Sequence[int], names: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.names = list(names) if names is not None else None
        self._images: np.ndarray | None = None
        if len(self.images) != len(self.targets):
            raise DataError(
                f"cache {self.path} holds {len(self.images)} images for {len(self.targets)} labels"
            )

    @property
    def images(self) -> np.ndarray:
        # opened lazily so that worker processes map the file themselves instead of receiving a copy
        if self._images is None:
            self._images = np.load(self.path, mmap_mode="r")
        return self._images

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_images": None}

    def __len__(self) -> int:
        return len(self.targets)

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        """Images, labels and indices of ``indices`` as one batch dict."""
        indices = np.asarray(indices, dtype=np.int64)
        # reading the memory map in file order is faster; the batch keeps the sampler's order
        order = np.argsort(indices, kind="stable")
        images = np.empty((len(indices), *self.images.shape[1:]), dtype=np.uint8)
        images[order] = self.images[indices[order]]
        return {
            "image": torch.from_numpy(images),
            "label": torch.from_numpy(self.targets[indices]),
            "index": torch.from_numpy(indices),
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = torch.from_numpy(np.array(self.images[index]))
        return {"image": image, "label": int(self.targets[index]), "index": int(index)}

    def sample_name(self, index: int) -> str:
        return self.names[index] if self.names is not None else str(index)


class CachedSplit(Dataset):
    """A split of a ``CachedImages`` pool that a batch sampler indexes with a list of positions.

    ``indices`` and ``dataset`` mirror ``torch.utils.data.Subset``, so the split's labels and sample
    names are read the same way for cached and streamed data.
    """

    def __init__(self, dataset: CachedImages, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, positions: Sequence[int] | int) -> dict[str, Any]:
        if isinstance(positions, int | np.integer):
            return self.dataset[int(self.indices[positions])]
        return self.dataset.get_batch(self.indices[np.asarray(positions, dtype=np.int64)])


def batched_loader(
    split: CachedSplit,
    batch_size: int,
    shuffle: bool,
    drop_last: bool,
    num_workers: int,
    pin_memory: bool,
    persistent_workers: bool,
) -> DataLoader:
    """A DataLoader whose every item is a whole batch cut from the cache (``batch_size=None``); the
    shuffled (training) one resumes in the middle of an epoch (``ResumableLoader``)."""
    loader = ResumableLoader if shuffle else DataLoader
    return loader(
        split,
        batch_size=None,
        sampler=EpochBatches(len(split), batch_size, shuffle, drop_last),
        # worker seeds from the run's seed, not from the global generator the model draws from
        generator=torch.Generator().manual_seed(run_seed()),
        num_workers=num_workers,
        worker_init_fn=shield_worker,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
    )
