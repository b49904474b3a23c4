"""The base every imgcls datamodule shares.

A subclass says where its images are (``_class_names`` and ``_pools``); the base owns the rest:
seeded stratified splits, balanced subsampling, loaders, and the batch transforms that run on the
model's device (uint8 -> float, augmentation when training, normalization).

Datasets that fit ``cache_max_gb`` are decoded once into a memory-mapped uint8 cache
(``imgcls.data.cache``) and served a whole batch per loader item; larger ones stream from their files.
Both paths give the same splits and the same batches: ``{"image": uint8 (B, C, H, W), "label", "index"}``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from imgcls.data.cache import (
    CACHE_MODES,
    DEFAULT_CACHE_DIR,
    CachedImages,
    CachedSplit,
    batched_loader,
    build_cache,
    cache_key,
    probe_image_shape,
    remove_stale,
    source_fingerprint,
)
from imgcls.data.datasets import ImageFileDataset, list_images
from imgcls.data.splits import cap_per_class, stratified_split
from imgcls.data.transforms import AUGMENTATIONS, build_augmentation
from imgcls.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test", "predict")


class ImageDataModule(LightningDataModule):
    """Shared base of the imgcls datamodules.

    Args:
        root: the dataset's folder.
        image_size: side every image is resized to; None keeps the native size (all images must match).
        batch_size: samples per batch.
        num_workers: loader worker processes.
        val_fraction: share of each class of the train+val pool held out for validation.
        test_fraction: share of each class held out for test; unused when the dataset has its own test set.
        max_per_class: at most this many images per class in train+val, and again in test (balanced subset).
        seed: seed of the splits and the subsampling (independent of the training seed).
        augment: name of a training augmentation preset (see ``imgcls.data.transforms.AUGMENTATIONS``).
        max_translate_px: largest shift of the ``flip_translate`` preset, in pixels at ``image_size``.
        mean: per-channel normalization mean in [0, 1] units; None uses the dataset's default.
        std: per-channel normalization standard deviation; None uses the dataset's default.
        predict_root: a folder of unlabeled images for ``predict``; None predicts on the test split.
        pin_memory: pin host memory for faster copies to a GPU; None pins when CUDA is available.
        persistent_workers: keep loader workers alive between epochs (no restart cost per epoch).
        cache: ``auto`` decodes the dataset once into a uint8 cache in ``cache_dir`` when it fits
            ``cache_max_gb`` and streams it from its files otherwise; ``always`` and ``never`` force either.
        cache_dir: folder of the decoded caches (never inside ``root``, which may be read-only).
        cache_max_gb: largest cache ``auto`` builds, in GB of decoded uint8 pixels.
    """

    default_mean: Sequence[float] = IMAGENET_MEAN
    default_std: Sequence[float] = IMAGENET_STD

    def __init__(
        self,
        root: str,
        image_size: int | None = None,
        batch_size: int = 32,
        num_workers: int = 2,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        max_per_class: int | None = None,
        seed: int = 0,
        augment: str = "none",
        max_translate_px: int = 30,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        predict_root: str | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        cache: str = "auto",
        cache_dir: str = DEFAULT_CACHE_DIR,
        cache_max_gb: float = 4.0,
    ) -> None:
        super().__init__()
        for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= fraction < 1:
                raise ConfigError(f"data.{name} must be in [0, 1), got {fraction}")
        if augment not in AUGMENTATIONS:
            raise ConfigError(f"unknown data.augment {augment!r}; choose one of: {', '.join(AUGMENTATIONS)}")
        if cache not in CACHE_MODES:
            raise ConfigError(f"unknown data.cache {cache!r}; choose one of: {', '.join(CACHE_MODES)}")
        self.root = Path(root).expanduser()
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.max_per_class = max_per_class
        self.seed = seed
        self.augment = augment
        self.max_translate_px = max_translate_px
        self.mean = mean
        self.std = std
        self.predict_root = Path(predict_root).expanduser() if predict_root else None
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers
        self.cache = cache
        self.cache_dir = Path(cache_dir).expanduser()
        self.cache_max_gb = cache_max_gb
        self.datasets: dict[str, Dataset] = {}
        self._augmentation: nn.Module | None = None
        self._norm_cache: dict[str, Any] = {}

    # --- what a subclass provides -------------------------------------------------------------

    def _class_names(self) -> list[str]:
        """Names of the classes, in label order. May list folders; must not decode images."""
        raise NotImplementedError

    def _pools(self) -> dict[str, Dataset]:
        """The dataset's own pools: ``"fit"`` always, ``"test"`` when it has an official test set.

        Each pool is a dataset of ``{"image", "label", "index"}`` dicts with a ``targets`` array.
        """
        raise NotImplementedError

    @property
    def in_chans(self) -> int:
        """Channels of the images the loaders yield."""
        return 3

    # --- what the model links to --------------------------------------------------------------

    @cached_property
    def class_names(self) -> list[str]:
        return list(self._class_names())

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    # --- splits ---------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        pools = self._pools()
        splits = self._split_indices(pools)
        variant = ""
        if self.max_per_class is not None:
            # decode only what the capped splits use, not the whole pool
            pools, splits = self._narrow(pools, splits)
            variant = f"max{self.max_per_class}-seed{self.seed}"
        pools = {name: self._cached(name, pool, variant) for name, pool in pools.items()}
        self.datasets = {split: self._subset(pools[pool], idx) for split, (pool, idx) in splits.items()}
        self.datasets["predict"] = self._predict_pool() if self.predict_root else self.datasets["test"]

    def _split_indices(self, pools: dict[str, Dataset]) -> dict[str, tuple[str, np.ndarray]]:
        """``{split: (pool name, indices into that pool)}`` for train, val and test; no decoding."""
        targets = np.asarray(pools["fit"].targets)
        self._check_labels(targets, "training pool")
        everything = np.arange(len(targets))
        if "test" in pools:
            trainval = everything
            test_targets = np.asarray(pools["test"].targets)
            self._check_labels(test_targets, "test pool")
            test = (
                "test",
                cap_per_class(np.arange(len(test_targets)), test_targets, self.max_per_class, self.seed),
            )
        else:
            trainval, test_idx = stratified_split(
                everything, targets, self.test_fraction, self.seed, purpose=1
            )
            test = ("fit", cap_per_class(test_idx, targets, self.max_per_class, self.seed))
        trainval = cap_per_class(trainval, targets, self.max_per_class, self.seed)
        train_idx, val_idx = stratified_split(trainval, targets, self.val_fraction, self.seed, purpose=2)
        if len(train_idx) == 0:
            raise DataError(
                f"no training images left in {self.root} after the split; add images or lower the fractions"
            )
        return {"train": ("fit", train_idx), "val": ("fit", val_idx), "test": test}

    @staticmethod
    def _narrow(
        pools: dict[str, Dataset], splits: dict[str, tuple[str, np.ndarray]]
    ) -> tuple[dict[str, Dataset], dict[str, tuple[str, np.ndarray]]]:
        """Pools cut down to the images the splits use, and the splits' indices into the cut pools."""
        pools, splits = dict(pools), dict(splits)
        for name, pool in pools.items():
            used = np.unique(np.concatenate([idx for on, idx in splits.values() if on == name]))
            if len(used) == len(pool) or not hasattr(pool, "select"):
                continue
            pools[name] = pool.select(used)
            for split, (on, idx) in splits.items():
                if on == name:
                    splits[split] = (on, np.searchsorted(used, idx))
        return pools, splits

    @staticmethod
    def _subset(pool: Dataset, indices: np.ndarray) -> Dataset:
        if isinstance(pool, CachedImages):
            return CachedSplit(pool, indices)
        return Subset(pool, indices.tolist())

    # --- the decoded cache ----------------------------------------------------------------------

    def _cached(self, name: str, pool: Dataset, variant: str = "") -> Dataset:
        """``pool`` as a ``CachedImages`` when the cache mode and budget allow, else unchanged.

        ``variant`` names a selection of the pool (``max_per_class``), which gets a cache file of its
        own beside the whole pool's.
        """
        if self.cache == "never" or len(pool) == 0:
            return pool
        fingerprint = source_fingerprint(pool)
        if fingerprint is None:
            log.info("data.cache=%s: %s cannot be cached; streaming it", self.cache, type(pool).__name__)
            return pool
        shape = probe_image_shape(pool)
        size_gb = len(pool) * int(np.prod(shape)) / 1e9
        if self.cache == "auto" and size_gb > self.cache_max_gb:
            log.info(
                "the %s pool of %s decodes to %.2f GB, over data.cache_max_gb=%.2f; streaming it from its files",
                name,
                self.root,
                size_gb,
                self.cache_max_gb,
            )
            return pool
        fingerprint["datamodule"] = f"{type(self).__module__}.{type(self).__qualname__}"
        # one prefix per folder, pool, size and channels: a rebuild after a source change finds and
        # removes the outdated file, and never touches a cache of the same folder at another size
        where = f"{self.root.resolve()}|{fingerprint['image_size']}|{fingerprint['in_chans']}"
        origin = hashlib.sha256(where.encode()).hexdigest()[:8]
        # ("fit.max200-seed0", not "fit-max200...": the whole pool's prefix must not match the selection's)
        pool_name = f"{name}.{variant}" if variant else name
        prefix = f"{type(self).__name__.lower()}-{pool_name}-{origin}"
        path = self.cache_dir / f"{prefix}-{cache_key(fingerprint)}.npy"
        if not path.is_file():
            log.info(
                "decoding %d images of %s into the cache %s (%.2f GB)", len(pool), self.root, path, size_gb
            )
            build_cache(pool, path, num_workers=self.num_workers)
            remove_stale(self.cache_dir, prefix, keep=path)
        names = [pool.sample_name(i) for i in range(len(pool))] if hasattr(pool, "sample_name") else None
        return CachedImages(path, pool.targets, names)

    def _check_labels(self, targets: np.ndarray, what: str) -> None:
        if len(targets) == 0:
            raise DataError(f"the {what} of {self.root} is empty")
        if targets.min() < 0 or targets.max() >= self.num_classes:
            raise DataError(
                f"the {what} of {self.root} has labels outside 0..{self.num_classes - 1} "
                f"({self.num_classes} classes: {', '.join(self.class_names)})"
            )

    def _predict_pool(self) -> Dataset:
        folder = self.predict_root
        if folder is None or not folder.is_dir():
            raise DataError(
                f"predict folder {folder} does not exist; set data.predict_root to a folder of images"
            )
        files = list_images(folder)
        if not files:
            raise DataError(f"predict folder {folder} holds no images")
        return ImageFileDataset(files, [-1] * len(files), self.in_chans, self.image_size)

    def split_targets(self, split: str) -> np.ndarray:
        """Labels of one split, in loader order (for class-distribution reports)."""
        self.setup()
        subset = self.datasets[split]
        return np.asarray(subset.dataset.targets)[np.asarray(subset.indices, dtype=np.int64)]

    def sample_name(self, split: str, index: int) -> str:
        """A readable name (file path or index) of the sample a batch reports as ``index``."""
        dataset = self.datasets[split]
        base = dataset.dataset if isinstance(dataset, Subset | CachedSplit) else dataset
        return base.sample_name(index) if hasattr(base, "sample_name") else str(index)

    # --- loaders --------------------------------------------------------------------------------

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        dataset = self.datasets[split]
        # a last batch of one sample breaks batch norm in training
        drop_last = shuffle and len(dataset) % self.batch_size == 1
        # Under several processes Lightning shards a loader's items; items of whole batches would be
        # padded with repeated batches, so the cache is then served per sample like the streaming path.
        distributed = self.trainer is not None and self.trainer.world_size > 1
        if isinstance(dataset, CachedSplit) and not distributed:
            return batched_loader(
                dataset,
                self.batch_size,
                shuffle=shuffle,
                drop_last=drop_last,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                persistent_workers=self.persistent_workers,
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            drop_last=drop_last,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

    # --- batch transforms on the model's device -------------------------------------------------

    @property
    def normalization(self) -> tuple[list[float], list[float]]:
        mean = list(self.mean if self.mean is not None else self.default_mean)
        std = list(self.std if self.std is not None else self.default_std)
        if len(mean) == 1 and self.in_chans > 1:
            mean, std = mean * self.in_chans, std * self.in_chans
        if len(mean) != self.in_chans or len(std) != self.in_chans:
            raise ConfigError(
                f"data.mean and data.std need {self.in_chans} values (one per channel), got {len(mean)} and {len(std)}"
            )
        return mean, std

    def transform_batch(self, batch: dict[str, Any], train: bool) -> dict[str, Any]:
        """uint8 images -> float in [0, 1] -> augmentation (``train``) -> normalization."""
        image = batch["image"]
        owned = image.dtype == torch.uint8
        augmentation = None
        if train and self.augment != "none":
            if self._augmentation is None:
                self._augmentation = build_augmentation(
                    self.augment, tuple(image.shape[-2:]), self.in_chans, self.max_translate_px
                )
            augmentation = self._augmentation
        # shifts and flips move bytes, a quarter of the memory traffic of the float batch
        if augmentation is not None and owned and getattr(augmentation, "works_on_uint8", False):
            image, augmentation = augmentation(image), None
        if owned:
            image = image.float().div_(255)
        if augmentation is not None:
            image = augmentation(image)
        mean_t, std_t = self._normalization_tensors(image.device, image.dtype)
        # in place only on a tensor made here: a float batch passed in is the caller's
        image = image.sub_(mean_t).div_(std_t) if owned else (image - mean_t) / std_t
        return {**batch, "image": image}

    def _normalization_tensors(
        self, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # built once per device: a fresh host-to-GPU copy every batch would wait for the GPU
        key = (str(device), dtype)
        if self._norm_cache.get("key") != key:
            mean, std = self.normalization
            self._norm_cache = {
                "key": key,
                "mean": torch.tensor(mean, device=device, dtype=dtype).view(1, -1, 1, 1),
                "std": torch.tensor(std, device=device, dtype=dtype).view(1, -1, 1, 1),
            }
        return self._norm_cache["mean"], self._norm_cache["std"]

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        training = self.trainer is not None and self.trainer.training
        return self.transform_batch(batch, train=training)
