"""The base every imgcls datamodule shares.

A subclass says where its images are (``_class_names`` and ``_pools``); the base owns the rest:
seeded stratified splits, balanced subsampling, loaders, and the batch transforms that run on the
model's device (uint8 -> float, augmentation when training, normalization).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from imgcls.data.datasets import ImageFileDataset, list_images
from imgcls.data.splits import cap_per_class, stratified_split
from imgcls.data.transforms import AUGMENTATIONS, build_augmentation
from imgcls.errors import ConfigError, DataError

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
    ) -> None:
        super().__init__()
        for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= fraction < 1:
                raise ConfigError(f"data.{name} must be in [0, 1), got {fraction}")
        if augment not in AUGMENTATIONS:
            raise ConfigError(f"unknown data.augment {augment!r}; choose one of: {', '.join(AUGMENTATIONS)}")
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
        self.datasets: dict[str, Dataset] = {}
        self._augmentation: nn.Module | None = None

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
        fit = pools["fit"]
        targets = np.asarray(fit.targets)
        self._check_labels(targets, "training pool")
        everything = np.arange(len(targets))
        if "test" in pools:
            trainval = everything
            test_pool = pools["test"]
            test_targets = np.asarray(test_pool.targets)
            self._check_labels(test_targets, "test pool")
            test_idx = cap_per_class(
                np.arange(len(test_targets)), test_targets, self.max_per_class, self.seed
            )
        else:
            trainval, test_idx = stratified_split(
                everything, targets, self.test_fraction, self.seed, purpose=1
            )
            test_pool = fit
            test_idx = cap_per_class(test_idx, targets, self.max_per_class, self.seed)
        trainval = cap_per_class(trainval, targets, self.max_per_class, self.seed)
        train_idx, val_idx = stratified_split(trainval, targets, self.val_fraction, self.seed, purpose=2)
        if len(train_idx) == 0:
            raise DataError(
                f"no training images left in {self.root} after the split; add images or lower the fractions"
            )
        self.datasets = {
            "train": Subset(fit, train_idx.tolist()),
            "val": Subset(fit, val_idx.tolist()),
            "test": Subset(test_pool, test_idx.tolist()),
        }
        self.datasets["predict"] = self._predict_pool() if self.predict_root else self.datasets["test"]

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
        base = dataset.dataset if isinstance(dataset, Subset) else dataset
        return base.sample_name(index) if hasattr(base, "sample_name") else str(index)

    # --- loaders --------------------------------------------------------------------------------

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        dataset = self.datasets[split]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            # a last batch of one sample breaks batch norm in training
            drop_last=shuffle and len(dataset) % self.batch_size == 1,
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
        if image.dtype == torch.uint8:
            image = image.float().div_(255)
        if train and self.augment != "none":
            if self._augmentation is None:
                self._augmentation = build_augmentation(
                    self.augment, image.shape[-1], self.in_chans, self.max_translate_px
                )
            image = self._augmentation(image)
        mean, std = self.normalization
        mean_t = torch.tensor(mean, device=image.device, dtype=image.dtype).view(1, -1, 1, 1)
        std_t = torch.tensor(std, device=image.device, dtype=image.dtype).view(1, -1, 1, 1)
        return {**batch, "image": (image - mean_t) / std_t}

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        training = self.trainer is not None and self.trainer.training
        return self.transform_batch(batch, train=training)
