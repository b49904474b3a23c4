"""CIFAR-10: 60,000 32x32 colour images of 10 classes, with an official 10,000-image test set."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from imgcls.data.base import ImageDataModule
from imgcls.data.datasets import ArrayImageDataset, ImageFileDataset, list_class_folders, scan_class_folders
from imgcls.errors import DataError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PICKLE_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    """One pickled CIFAR batch: (N, 32, 32, 3) uint8 images and their labels."""
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
        images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return images, list(batch["labels"])
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise DataError(f"cannot read CIFAR-10 batch {path}: {err}. Replace it with an intact copy.") from err


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 in torchvision's pickle layout or as image folders; the official test set is the test split.

    Layouts of ``root``: ``cifar-10-batches-py/`` (or that folder itself), as torchvision downloads it;
    or ``train/<class>/*`` and ``test/<class>/*`` image files (a JPEG or PNG copy). Validation comes
    from a seeded split of the training images.

    Args:
        root: the CIFAR-10 folder.
        download: fetch the pickle batches through torchvision in ``prepare_data`` when missing.
        **kwargs: see ``ImageDataModule`` (``image_size`` None keeps 32 px).
    """

    default_mean = (0.4914, 0.4822, 0.4465)
    default_std = (0.2470, 0.2435, 0.2616)

    def __init__(self, root: str, download: bool = False, **kwargs) -> None:
        super().__init__(root=root, **kwargs)
        self.download = download

    def _pickle_folder(self) -> Path | None:
        for folder in (self.root / PICKLE_FOLDER, self.root):
            if (folder / "test_batch").is_file():
                return folder
        return None

    def _is_folder_layout(self) -> bool:
        return (self.root / "train").is_dir() and (self.root / "test").is_dir()

    def prepare_data(self) -> None:
        if self.download and self._pickle_folder() is None and not self._is_folder_layout():
            from torchvision.datasets import CIFAR10

            CIFAR10(str(self.root), train=True, download=True)

    def _class_names(self) -> list[str]:
        if self._pickle_folder() is not None:
            return list(CIFAR10_CLASSES)
        if self._is_folder_layout():
            return list_class_folders(self.root / "train")
        found = sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []
        raise DataError(
            f"CIFAR-10 not found in {self.root} (found: {', '.join(found[:8]) or 'nothing'}). Expected "
            f"{PICKLE_FOLDER}/ with data_batch_1..5 and test_batch, or train/<class>/ and test/<class>/ image "
            "folders; point data.root there, or set data.download=true with internet."
        )

    def _pools(self) -> dict[str, Dataset]:
        folder = self._pickle_folder()
        if folder is None:
            paths, targets, _ = scan_class_folders(self.root / "train", self.class_names)
            test_paths, test_targets, _ = scan_class_folders(self.root / "test", self.class_names)
            return {
                "fit": ImageFileDataset(paths, targets, 3, self.image_size),
                "test": ImageFileDataset(test_paths, test_targets, 3, self.image_size),
            }
        missing = [name for name in TRAIN_BATCHES if not (folder / name).is_file()]
        if missing:
            raise DataError(
                f"{folder} lacks {', '.join(missing)}; the pickle layout needs all 5 training batches"
            )
        batches = [read_cifar_batch(folder / name) for name in TRAIN_BATCHES]
        images = np.concatenate([b[0] for b in batches])
        labels = [label for b in batches for label in b[1]]
        test_images, test_labels = read_cifar_batch(folder / "test_batch")
        return {
            "fit": ArrayImageDataset(images, labels, 3, self.image_size),
            "test": ArrayImageDataset(test_images, test_labels, 3, self.image_size),
        }
