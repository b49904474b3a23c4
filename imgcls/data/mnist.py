"""MNIST and Fashion-MNIST: 70,000 28x28 grayscale images, 10 classes, an official 10,000-image test set."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset
from torchvision import datasets

from imgcls.data.base import ImageDataModule
from imgcls.data.datasets import ArrayImageDataset
from imgcls.errors import ConfigError, DataError

_IDX_MAGIC = {"images": 0x803, "labels": 0x801}  # unsigned bytes, 3 or 1 dimensions


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (plain or ``.gz``) into a uint8 array; raise ``DataError`` for anything else."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read {path}: {err}. Replace the file with an intact copy.") from err
    kind = "images" if "images" in path.name else "labels"
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else -1
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if magic != _IDX_MAGIC[kind] or len(data) != 4 + 4 * ndim + int(np.prod(shape)):
        raise DataError(
            f"{path} is not an idx {kind} file (bad header or length); replace it with an intact copy"
        )
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


class MNISTDataModule(ImageDataModule):
    """MNIST from its idx files; the official test set is the test split, validation comes from training.

    ``root`` may hold the four idx files (``train-images-idx3-ubyte[.gz]`` and friends) directly, in
    ``raw/``, or in torchvision's ``<root>/MNIST/raw``. They are read in place: nothing is written to
    ``root`` unless ``download`` is set.

    Args:
        root: folder with the idx files.
        in_chans: 1 keeps grayscale; 3 repeats it for RGB-pretrained backbones.
        download: fetch the files through torchvision in ``prepare_data`` when they are missing.
        **kwargs: see ``ImageDataModule`` (``image_size`` None keeps 28 px).
    """

    torchvision_class: type[datasets.MNIST] = datasets.MNIST
    # Mean and std of the 60,000 training images.
    default_mean = (0.1307,)
    default_std = (0.3081,)

    def __init__(self, root: str, in_chans: int = 1, download: bool = False, **kwargs) -> None:
        super().__init__(root=root, **kwargs)
        if in_chans not in (1, 3):
            raise ConfigError(
                f"data.in_chans must be 1 (grayscale) or 3 (repeated for RGB models), got {in_chans}"
            )
        self._in_chans = in_chans
        self.download = download

    @property
    def in_chans(self) -> int:
        return self._in_chans

    @property
    def _file_names(self) -> list[str]:
        return [Path(url).name.removesuffix(".gz") for url, _ in self.torchvision_class.resources]

    def _find(self, name: str) -> Path | None:
        folders = (self.root, self.root / "raw", self.root / self.torchvision_class.__name__ / "raw")
        for folder in folders:
            for path in (folder / name, folder / f"{name}.gz"):
                if path.is_file():
                    return path
        return None

    def prepare_data(self) -> None:
        if self.download and any(self._find(name) is None for name in self._file_names):
            self.torchvision_class(str(self.root), train=True, download=True)

    def _class_names(self) -> list[str]:
        return list(self.torchvision_class.classes)

    def _split(self, prefix: str) -> ArrayImageDataset:
        paths = [self._find(name) for name in self._file_names if name.startswith(prefix)]
        if None in paths:
            found = sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []
            dataset = self.torchvision_class.__name__
            raise DataError(
                f"{dataset} idx files not found in {self.root} (found: {', '.join(found[:8]) or 'nothing'}). "
                f"Expected {', '.join(self._file_names)} (optionally .gz) in {self.root}, {self.root}/raw or "
                f"{self.root}/{dataset}/raw; point data.root there, or set data.download=true with internet."
            )
        images, labels = (read_idx(p) for p in sorted(paths, key=lambda p: "labels" in p.name))
        if len(images) != len(labels):
            raise DataError(f"{paths[0].parent}: {len(images)} {prefix} images but {len(labels)} labels")
        return ArrayImageDataset(images, labels, self.in_chans, self.image_size)

    def _pools(self) -> dict[str, Dataset]:
        return {"fit": self._split("train"), "test": self._split("t10k")}


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Zalando): the MNIST format and layout (``<root>/FashionMNIST/raw`` for torchvision)."""

    torchvision_class = datasets.FashionMNIST
    default_mean = (0.2860,)
    default_std = (0.3530,)
