"""miniImageNet: 60,000 84x84 images of 100 ImageNet classes (600 each), split 64/16/20 by class."""

from __future__ import annotations

import csv
from functools import cached_property
from pathlib import Path

from torch.utils.data import Dataset

from imgcls.data.base import ImageDataModule
from imgcls.data.datasets import ImageFileDataset, list_class_folders, list_images
from imgcls.errors import ConfigError, DataError

CLASS_SPLITS = ("train", "val", "test")


def read_split_csv(path: Path) -> list[tuple[str, str]]:
    """(filename, label) rows of a miniImageNet split file; a ``filename,label`` header is skipped."""
    if not path.is_file():
        raise DataError(
            f"miniImageNet split file {path} is missing. The CSV layout is images/ plus train.csv, val.csv and "
            "test.csv (filename,label); restore the file, or choose other splits with data.splits."
        )
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if rows and rows[0][:2] == ["filename", "label"]:
        rows = rows[1:]
    bad = [row for row in rows if len(row) != 2]
    if bad or not rows:
        raise DataError(
            f"{path} must hold 'filename,label' rows; {'it is empty' if not rows else f'got {bad[0]}'}"
        )
    return [(name, label) for name, label in rows]


class MiniImageNetDataModule(ImageDataModule):
    """miniImageNet for pre-training: every image of the chosen class splits, split again by image.

    Two layouts of ``root`` are read: ``images/`` plus ``train.csv``/``val.csv``/``test.csv``
    (``filename,label``, as Ravi & Larochelle published it); or class folders (``n01532829/...``),
    either directly in ``root`` or under ``root/{train,val,test}/``. The few-shot class splits are
    disjoint, so pre-training takes the classes of ``splits`` and makes a seeded stratified
    train/val/test split of their images (``val_fraction``, ``test_fraction``).

    Args:
        root: the miniImageNet folder.
        splits: class splits whose classes and images are used (the 64 ``train`` classes by default).
        image_size: 84 is the usual size.
        **kwargs: see ``ImageDataModule``.
    """

    def __init__(
        self, root: str, splits: list[str] | None = None, image_size: int | None = 84, **kwargs
    ) -> None:
        super().__init__(root=root, image_size=image_size, **kwargs)
        self.splits = list(splits) if splits is not None else ["train"]
        unknown = [s for s in self.splits if s not in CLASS_SPLITS]
        if unknown or not self.splits:
            raise ConfigError(f"data.splits {self.splits} must name some of {', '.join(CLASS_SPLITS)}")

    @cached_property
    def _index(self) -> tuple[list[Path], list[str]]:
        """(image paths, their class labels) over the chosen splits, in either layout."""
        if (self.root / "images").is_dir():
            rows = [row for split in self.splits for row in read_split_csv(self.root / f"{split}.csv")]
            paths = [self.root / "images" / name for name, _ in rows]
            missing = [p for p in paths if not p.is_file()]
            if missing:
                raise DataError(
                    f"{len(missing)} images listed in the split files are missing from {self.root}/images, e.g. "
                    f"{missing[0].name}; restore them or point data.root at a complete copy"
                )
            return paths, [label for _, label in rows]
        nested = [s for s in CLASS_SPLITS if (self.root / s).is_dir()]
        if nested:
            absent = [s for s in self.splits if s not in nested]
            if absent:
                raise DataError(
                    f"{self.root} has no {', '.join(absent)}/ class folders (found {', '.join(nested)}/)"
                )
            folders = [
                self.root / s / name for s in self.splits for name in list_class_folders(self.root / s)
            ]
        else:
            folders = (
                [self.root / name for name in list_class_folders(self.root)] if self.root.is_dir() else []
            )
        if not folders:
            raise DataError(
                f"miniImageNet not found in {self.root}. Expected images/ plus train.csv, val.csv, test.csv "
                "(filename,label), or class folders (n01532829/...) in the root or under train/, val/, test/."
            )
        paths, labels = [], []
        for folder in folders:
            files = list_images(folder)
            paths += files
            labels += [folder.name] * len(files)
        return paths, labels

    def _class_names(self) -> list[str]:
        return sorted(set(self._index[1]))

    def _pools(self) -> dict[str, Dataset]:
        paths, labels = self._index
        position = {name: i for i, name in enumerate(self.class_names)}
        return {"fit": ImageFileDataset(paths, [position[label] for label in labels], 3, self.image_size)}
