"""Map-style datasets that yield ``{"image": uint8 (C, H, W), "label": int, "index": int}``.

Images stay uint8 until they reach the model's device, where the datamodule converts, augments and
normalizes whole batches: workers only decode and resize.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as F

from imgcls.errors import DataError

log = logging.getLogger(__name__)
SKIPPED_SHOWN = 5  # names of skipped files a warning lists
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_image(path: str | Path, in_chans: int) -> torch.Tensor:
    """Decode an image file into a uint8 tensor of shape (in_chans, H, W).

    Mixed inputs (grayscale, RGBA, palette, 16-bit) are converted to ``in_chans`` (1 or 3) channels.
    A corrupt or truncated file raises a ``DataError`` that names it.
    """
    if in_chans not in (1, 3):
        raise DataError(f"image files decode to 1 or 3 channels, not {in_chans}")
    try:
        with Image.open(path) as img:
            return image_to_tensor(img, in_chans)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DataError(
            f"cannot read image {path}: {err}. Replace or delete the file, then run again."
        ) from err


def image_to_tensor(img: Image.Image, in_chans: int) -> torch.Tensor:
    """A PIL image as a uint8 tensor of shape (in_chans, H, W), converted as ``read_image`` converts files."""
    if img.mode == "I;16" or img.mode == "I":
        # 16-bit grayscale: scale to 8 bits before the mode conversion clips it
        arr = np.asarray(img, dtype=np.float32)
        img = Image.fromarray((arr / max(float(arr.max()), 1.0) * 255).astype(np.uint8))
    array = np.array(img.convert({1: "L", 3: "RGB"}[in_chans]), dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def resize_uint8(image: torch.Tensor, image_size: int | None) -> torch.Tensor:
    """Resize a uint8 (C, H, W) image to ``image_size`` square (antialiased); None keeps it."""
    if image_size is None or tuple(image.shape[-2:]) == (image_size, image_size):
        return image
    return F.resize(image, [image_size, image_size], antialias=True)


class ImageFileDataset(Dataset):
    """Images read from files, with integer labels (-1 for unlabeled images).

    Args:
        paths: the image files.
        targets: the label of each file.
        in_chans: channels of the images; image files decode to 1 or 3.
        image_size: side every image is resized to; None keeps the native size.
        reader: reads one file into a (C, H, W) tensor; None decodes image files with ``read_image``.
            A reader other than None may return any dtype, so its images are never cached as uint8.
            Loader workers pickle it: pass a module-level function or a ``functools.partial`` of one.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        targets: Sequence[int],
        in_chans: int = 3,
        image_size: int | None = None,
        reader: Callable[[str], torch.Tensor] | None = None,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.targets = np.asarray(targets, dtype=np.int64)
        self.in_chans = in_chans
        self.image_size = image_size
        self.reader = reader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        image = read_image(path, self.in_chans) if self.reader is None else self.reader(path)
        return {
            "image": resize_uint8(image, self.image_size),
            "label": int(self.targets[index]),
            "index": index,
        }

    def sample_name(self, index: int) -> str:
        return self.paths[index]

    @property
    def folder(self) -> Path | None:
        """The deepest folder that holds every file (what logs name as the images' source)."""
        try:
            return Path(os.path.commonpath([os.path.dirname(p) for p in self.paths]))
        except ValueError:  # no files, or relative and absolute paths mixed
            return None

    def select(self, indices: np.ndarray) -> ImageFileDataset:
        """The images at ``indices`` only, as a dataset of their own (what a subset needs to cache)."""
        paths = [self.paths[i] for i in indices]
        return ImageFileDataset(paths, self.targets[indices], self.in_chans, self.image_size, self.reader)


class ArrayImageDataset(Dataset):
    """Images held in one uint8 array of shape (N, H, W) or (N, H, W, C) (MNIST, CIFAR-10)."""

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        targets: Sequence[int],
        in_chans: int,
        image_size: int | None = None,
        ids: Sequence[int] | None = None,
    ) -> None:
        images = torch.as_tensor(images)
        if images.ndim == 3:
            images = images.unsqueeze(-1)
        self.images = images  # (N, H, W, C) uint8
        self.targets = np.asarray(targets, dtype=np.int64)
        self.in_chans = in_chans
        self.image_size = image_size
        # positions in the original array, which sample names report
        self.ids = np.arange(len(images)) if ids is None else np.asarray(ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index].permute(2, 0, 1)
        if image.shape[0] != self.in_chans:
            if image.shape[0] == 1:
                image = image.expand(self.in_chans, -1, -1)
            else:
                raise DataError(f"cannot turn {image.shape[0]}-channel images into {self.in_chans} channels")
        image = resize_uint8(image.contiguous(), self.image_size)
        return {"image": image, "label": int(self.targets[index]), "index": index}

    def sample_name(self, index: int) -> str:
        return str(int(self.ids[index]))

    def select(self, indices: np.ndarray) -> ArrayImageDataset:
        """The images at ``indices`` only, as a dataset of their own (what a subset needs to cache)."""
        chosen = torch.as_tensor(indices, dtype=torch.int64)
        return ArrayImageDataset(
            self.images[chosen], self.targets[indices], self.in_chans, self.image_size, self.ids[indices]
        )


def list_class_folders(root: Path) -> list[str]:
    """Sorted names of the class subfolders of ``root`` (hidden folders skipped)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )


def images_of_folder(folder: Path, what: str = "folder", fix: str = "") -> list[Path]:
    """The images of a folder of images to classify (``list_images``), saying in one warning which of its
    other files it skips.

    Args:
        folder: the folder.
        what: how the messages name it (``predict folder``).
        fix: what else the user may do when it holds no image.

    Raises:
        DataError: it holds no image.
    """
    files = list_images(folder)
    images = set(files)
    # hidden files (.DS_Store) are the system's, not the user's: skipped without a word
    others = sorted(
        p.name for p in folder.iterdir() if p.is_file() and p not in images and not p.name.startswith(".")
    )
    if others:
        shown = ", ".join(others[:SKIPPED_SHOWN]) + (", ..." if len(others) > SKIPPED_SHOWN else "")
        count = len(others)
        said = "1 file is not an image and is" if count == 1 else f"{count} files are not images and are"
        log.warning("%s %s: %s skipped: %s", what, folder, said, shown)
    if not files:
        hint = f"; add images to it or {fix}" if fix else ""
        raise DataError(f"{what} {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}){hint}")
    return files


def scan_class_folders(
    root: Path, class_names: Sequence[str] | None = None
) -> tuple[list[Path], list[int], list[str]]:
    """Index a ``root/<class>/<image>`` tree: (paths, targets, class_names).

    Raises ``DataError`` for a missing root, a root without class folders and an empty class folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"dataset folder {root} does not exist. Point data.root at a folder of class subfolders "
            "(<root>/<class name>/<image files>)."
        )
    names = list(class_names) if class_names is not None else list_class_folders(root)
    if not names:
        raise DataError(f"{root} holds no class subfolders; expected <root>/<class name>/<image files>.")
    paths: list[Path] = []
    targets: list[int] = []
    for target, name in enumerate(names):
        folder = root / name
        if not folder.is_dir():
            raise DataError(
                f"class folder {folder} is missing; expected one folder per class: {', '.join(names)}"
            )
        files = list_images(folder)
        if not files:
            raise DataError(
                f"class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder."
            )
        paths.extend(files)
        targets.extend([target] * len(files))
    return paths, targets, names
