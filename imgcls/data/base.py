"""The base every imgcls datamodule shares.

A subclass says where its images are (``_class_names`` and ``_pools``); the base owns the rest:
seeded stratified splits, balanced subsampling, loaders, and the batch transform that runs on the
model's device (``imgcls.data.transforms.BatchTransform``: uint8 -> float, augmentation when
training, normalization).

Datasets that fit ``cache_max_gb`` are decoded once into a memory-mapped uint8 cache
(``imgcls.data.cache``) and served a whole batch per loader item; larger ones stream from their files.
Each stage sets up, and so decodes, only the splits it uses.
Both paths give the same splits and the same batches: ``{"image": uint8 (B, C, H, W), "label", "index"}``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import move_data_to_device
from torch.utils.data import DataLoader, Dataset, Subset

from imgcls.data.cache import (
    CACHE_MODES,
    DEFAULT_CACHE_DIR,
    CachedImages,
    CachedSplit,
    batched_loader,
    cache_pool,
)
from imgcls.data.datasets import IMAGE_EXTENSIONS, ImageFileDataset, images_of_folder
from imgcls.data.samplers import EpochBatches, ResumableLoader, run_seed, shield_worker
from imgcls.data.splits import cap_per_class, stratified_split
from imgcls.data.transforms import BatchTransform, check_alternating_flips, check_augmentation, scaled_size
from imgcls.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# the splits each stage of a Trainer uses; any other stage (None) sets up all of them
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
_ALL_SPLITS = ("train", "val", "test", "predict")


def absolute_folder(path: str | Path) -> Path:
    """``path`` with ``~`` expanded, made absolute from the working folder (symbolic links kept).

    Sample names derive from it, so a run folder's ``predictions.csv`` opens from anywhere.
    """
    return Path(os.path.abspath(Path(path).expanduser()))


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
        alternate_flips: airbench's alternating flip for the ``flip``, ``flip_translate`` and ``overhead``
            presets: a seeded half of the images is mirrored in even epochs and the other half in odd ones,
            so every image is seen both ways in every two epochs instead of by a coin toss.
        mean: per-channel normalization mean in [0, 1] units; None uses the dataset's default.
        std: per-channel normalization standard deviation; None uses the dataset's default.
        predict_root: a folder of unlabeled images for ``predict``, or one image file; None predicts on
            the test split.
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
        alternate_flips: bool = False,
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
        check_augmentation(augment)  # at once: the batch transform is built at the first batch
        check_alternating_flips(augment, alternate_flips)
        if cache not in CACHE_MODES:
            raise ConfigError(f"unknown data.cache {cache!r}; choose one of: {', '.join(CACHE_MODES)}")
        self.root = absolute_folder(root)
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.max_per_class = max_per_class
        self.seed = seed
        self.augment = augment
        self.max_translate_px = max_translate_px
        self.alternate_flips = alternate_flips
        self.mean = mean
        self.std = std
        self.predict_root = absolute_folder(predict_root) if predict_root else None
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers
        self.cache = cache
        self.cache_dir = Path(cache_dir).expanduser()
        self.cache_max_gb = cache_max_gb
        self.datasets: dict[str, Dataset] = {}
        # what setup lists without decoding: the pools, every split's (pool, indices), the pools' labels
        self._listed_pools: dict[str, Dataset] | None = None
        self._plan: dict[str, tuple[str, np.ndarray]] | None = None
        self._targets: dict[str, np.ndarray] = {}
        # pools made ready (cached or streamed) for all their splits, with each split's positions in them
        self._prepared: dict[str, tuple[Dataset, dict[str, np.ndarray]]] = {}
        self._batch_transform: BatchTransform | None = None
        # (share of the side, multiple of pixels) the training batches are scaled to (set_train_scale)
        self._train_scale: tuple[float, int] | None = None
        self._last_train_side: int | None = None

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

    def _image_reader(self) -> Callable[[str], torch.Tensor] | None:
        """How one image file becomes a (C, H, W) tensor; None decodes it with ``read_image``."""
        return None

    @property
    def reads_image_files(self) -> bool:
        """Whether its images are ordinary image files decoded as ``read_image`` does (RGB or grayscale),
        so that new images for its models decode the same way; False for a reader of its own (bands)."""
        return self._image_reader() is None

    # --- what the model links to --------------------------------------------------------------

    @cached_property
    def class_names(self) -> list[str]:
        return list(self._class_names())

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    # --- splits ---------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Make the splits ``stage`` uses; a later call adds those still missing (``test`` after ``fit``).

        Splits come from the labels alone, so they are the same whichever stage makes them. ``fit``
        (and None, every split) decodes whole pools into the cache; ``validate``, ``test`` and
        ``predict`` decode only the images of their split unless the whole pool's cache exists.
        """
        wanted = _STAGE_SPLITS.get(stage, _ALL_SPLITS) if stage is not None else _ALL_SPLITS
        needed = {split for split in wanted if split != "predict"}
        if "predict" in wanted and self.predict_root is None:
            needed.add("test")  # predict runs on the test split
        missing = [
            split for split in ("train", "val", "test") if split in needed and split not in self.datasets
        ]
        if missing:
            self._make_splits(missing, whole=stage in (None, "fit"))
        if "predict" in wanted and "predict" not in self.datasets:
            self.datasets["predict"] = self._predict_pool() if self.predict_root else self.datasets["test"]

    def _split_plan(self) -> dict[str, tuple[str, np.ndarray]]:
        """``{split: (pool name, indices into that pool)}``, listed once; decodes nothing."""
        if self._plan is None:
            pools = self._listed()
            self._plan = self._split_indices(pools)
            self._targets = {name: np.asarray(pool.targets, dtype=np.int64) for name, pool in pools.items()}
        return self._plan

    def _listed(self) -> dict[str, Dataset]:
        if self._listed_pools is None:
            self._listed_pools = self._pools()
        return self._listed_pools

    def _make_splits(self, splits: list[str], whole: bool) -> None:
        plan = self._split_plan()
        for name in sorted({plan[split][0] for split in splits}):
            own = [split for split in splits if plan[split][0] == name]
            pool, positions = self._prepare(name, own, whole)
            for split in own:
                self.datasets[split] = self._subset(pool, positions[split])
        if all(split in self.datasets for split in ("train", "val", "test")):
            self._listed_pools = None  # the prepared pools hold what the loaders need

    def _prepare(self, name: str, splits: list[str], whole: bool) -> tuple[Dataset, dict[str, np.ndarray]]:
        """Pool ``name`` ready to load ``splits`` (cached or streamed), and the splits' positions in it.

        ``whole`` prepares the pool for all of its splits. Otherwise, when the pool has no cache yet,
        only the images of ``splits`` are decoded: a ``test`` run of EuroSAT decodes its 5,400 test
        images, not all 27,000.
        """
        if name in self._prepared:
            return self._prepared[name]
        pool = self._listed()[name]
        positions = {split: idx for split, (on, idx) in self._split_plan().items() if on == name}
        variant = ""
        if self.max_per_class is not None:
            # decode only what the capped splits use, not the whole pool
            pool, positions = self._select(pool, positions)
            variant = f"max{self.max_per_class}-seed{self.seed}"
        own = {split: positions[split] for split in splits}
        part, part_positions = (pool, positions) if whole else self._select(pool, own)
        if part is pool:
            ready = self._cache(pool, name, variant)
        else:
            ready = self._cache(pool, name, variant, build=False)  # the whole pool's cache, if built before
            if ready is pool:  # it was not: decode just these splits
                return self._cache(part, name, self._part_variant(splits)), part_positions
        self._prepared[name] = (ready, positions)
        return ready, positions

    def _part_variant(self, splits: list[str]) -> str:
        # a name of its own: a later build of the whole pool must neither take nor remove this file
        cap = f"-max{self.max_per_class}" if self.max_per_class is not None else ""
        fractions = f"val{self.val_fraction:g}-test{self.test_fraction:g}"
        return f"{'+'.join(splits)}-only-seed{self.seed}-{fractions}{cap}"

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
    def _select(pool: Dataset, positions: dict[str, np.ndarray]) -> tuple[Dataset, dict[str, np.ndarray]]:
        """``pool`` cut down to the images of ``positions``, and each split's positions in the cut pool."""
        used = np.unique(np.concatenate(list(positions.values())))
        if len(used) == len(pool) or not hasattr(pool, "select"):
            return pool, positions
        return pool.select(used), {split: np.searchsorted(used, idx) for split, idx in positions.items()}

    @staticmethod
    def _subset(pool: Dataset, indices: np.ndarray) -> Dataset:
        if isinstance(pool, CachedImages):
            return CachedSplit(pool, indices)
        return Subset(pool, indices.tolist())

    # --- the decoded cache ----------------------------------------------------------------------

    def _cache(self, pool: Dataset, name: str, variant: str = "", build: bool = True) -> Dataset:
        """``pool`` as a ``CachedImages`` when ``data.cache`` and its budget allow, else unchanged."""
        return cache_pool(
            pool,
            name=name,
            owner=type(self),
            root=self.root,
            cache_dir=self.cache_dir,
            mode=self.cache,
            max_gb=self.cache_max_gb,
            variant=variant,
            num_workers=self.num_workers,
            build=build,
        )

    def _check_labels(self, targets: np.ndarray, what: str) -> None:
        if len(targets) == 0:
            raise DataError(f"the {what} of {self.root} is empty")
        if targets.min() < 0 or targets.max() >= self.num_classes:
            raise DataError(
                f"the {what} of {self.root} has labels outside 0..{self.num_classes - 1} "
                f"({self.num_classes} classes: {', '.join(self.class_names)})"
            )

    def _predict_pool(self) -> Dataset:
        path = self.predict_root
        if path is None or not path.exists():
            raise DataError(
                f"data.predict_root {path} does not exist; set it to a folder of images or to one image file"
            )
        if path.is_dir():
            files = images_of_folder(
                path, "predict folder", "set data.predict_root to another folder or to one image file"
            )
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            files = [path]
        else:
            raise DataError(
                f"data.predict_root {path} is not an image file ({', '.join(IMAGE_EXTENSIONS)}); set it to a "
                "folder of images or to one image file"
            )
        return ImageFileDataset(
            files, [-1] * len(files), self.in_chans, self.image_size, self._image_reader()
        )

    def split_targets(self, split: str) -> np.ndarray:
        """Labels of one split, in loader order (for class-distribution reports); decodes nothing."""
        if split == "predict":
            if self.predict_root is not None:
                self.setup("predict")
                return np.asarray(self.datasets["predict"].targets, dtype=np.int64)
            split = "test"
        pool, indices = self._split_plan()[split]
        return self._targets[pool][indices]

    def sample_name(self, split: str, index: int) -> str:
        """A readable name (file path or index) of the sample a batch reports as ``index``."""
        dataset = self.datasets[split]
        base = dataset.dataset if isinstance(dataset, Subset | CachedSplit) else dataset
        return base.sample_name(index) if hasattr(base, "sample_name") else str(index)

    # --- loaders --------------------------------------------------------------------------------

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        if split not in self.datasets:
            # setup decodes (or caches) whole pools: the Trainer calls it per stage, a loader never does
            stage = {"train": "fit", "val": "validate"}.get(split, split)
            raise RuntimeError(
                f"the {split} split is not set up: call setup({stage!r}) before {split}_dataloader() "
                "(a Trainer calls it before asking for loaders)"
            )
        dataset = self.datasets[split]
        # Under several processes Lightning shards a loader's items; items of whole batches would be
        # padded with repeated batches, so the cache is then served per sample like the streaming path.
        ranks = self.trainer.world_size if self.trainer is not None else 1
        distributed = ranks > 1
        # a last batch of one sample breaks batch norm in training; each rank gets ceil(n / ranks)
        drop_last = shuffle and math.ceil(len(dataset) / ranks) % self.batch_size == 1
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
        common = {
            "generator": torch.Generator().manual_seed(run_seed()),
            "num_workers": self.num_workers,
            "worker_init_fn": shield_worker,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers and self.num_workers > 0,
        }
        if shuffle and not distributed:
            # one process: the run's own order (the cached path's too), resumable mid-epoch
            order = EpochBatches(len(dataset), self.batch_size, shuffle=True, drop_last=drop_last)
            return ResumableLoader(dataset, batch_sampler=order, **common)
        # several: Lightning's DistributedSampler, seeded and set to each epoch as well
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last, **common)

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

    def set_train_scale(self, scale: float | None, multiple: int = 8) -> None:
        """Scale the training batches to ``scale`` of their side, after augmentation, each side rounded to
        a multiple of ``multiple`` pixels (``imgcls.callbacks.ProgressiveResizing`` sets it every epoch);
        None trains at full size."""
        self._train_scale = None if scale is None else (scale, multiple)

    @property
    def last_train_side(self) -> int | None:
        """Side of the last training batch scaled by ``set_train_scale``'s setting; None before one."""
        return self._last_train_side

    def transform_batch(self, batch: dict[str, Any], train: bool) -> dict[str, Any]:
        """uint8 images -> float in [0, 1] -> augmentation (``train``) -> normalization."""
        if self._batch_transform is None:
            mean, std = self.normalization
            self._batch_transform = BatchTransform(
                self.augment, mean, std, self.in_chans, self.max_translate_px, self.alternate_flips
            )
        images = batch["image"]
        size = None
        if train and self._train_scale is not None:
            size = scaled_size(tuple(images.shape[-2:]), *self._train_scale)
            self._last_train_side = size[-1]
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        images = self._batch_transform(
            images, train=train, size=size, indices=batch.get("index"), epoch=epoch
        )
        return {**batch, "image": images}

    def evaluation_batch(self, batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
        """A loader's batch on ``device``, prepared as validation prepares it, outside the loops.

        Moved as it is: the strategy's ``batch_to_device`` would also run ``on_after_batch_transfer``
        (during ``fit``, augmentation and normalisation), and the batch would be normalised twice.
        """
        return self.transform_batch(move_data_to_device(batch, device), train=False)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        if isinstance(batch, torch.Tensor):
            # a model's example input (Lightning's model summary runs one through these hooks): already
            # a float batch, not a batch of this datamodule's
            return batch
        training = self.trainer is not None and self.trainer.training
        return self.transform_batch(batch, train=training)
