"""CUB-200-2011: 11,788 photographs of 200 bird species, with an official train/test split."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from imgcls.data.base import ImageDataModule
from imgcls.data.datasets import ImageFileDataset
from imgcls.errors import DataError

INDEX_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")


def read_index(path: Path) -> dict[str, str]:
    """A CUB index file of ``<id> <value>`` lines as {id: value}."""
    if not path.is_file():
        raise DataError(
            f"CUB-200-2011 index file {path} is missing. The official layout holds images/ and "
            f"{', '.join(INDEX_FILES)}; restore the file from CUB_200_2011.tgz."
        )
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            key, _, value = line.strip().partition(" ")
            if not value:
                raise DataError(f"{path} line {number} is not '<id> <value>': {line!r}")
            entries[key] = value.strip()
    return entries


class CUBDataModule(ImageDataModule):
    """CUB-200-2011 in its official layout; ``train_test_split.txt`` gives the test split.

    ``root`` holds ``images/<class>/<file>.jpg``, ``images.txt``, ``image_class_labels.txt``,
    ``train_test_split.txt`` and ``classes.txt`` (or is the folder that holds ``CUB_200_2011/``).
    Validation comes from a seeded stratified split of the official training images.

    Args:
        root: the CUB_200_2011 folder.
        image_size: side images are resized to (their sizes vary).
        **kwargs: see ``ImageDataModule``.
    """

    def __init__(self, root: str, image_size: int | None = 224, **kwargs) -> None:
        super().__init__(root=root, image_size=image_size, **kwargs)

    def _data_folder(self) -> Path:
        for folder in (self.root, self.root / "CUB_200_2011"):
            if (folder / "images").is_dir() or any((folder / name).is_file() for name in INDEX_FILES):
                return folder
        found = sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []
        raise DataError(
            f"CUB-200-2011 not found in {self.root} (found: {', '.join(found[:8]) or 'nothing'}). Expected the "
            f"official layout: images/ plus {', '.join(INDEX_FILES)}; point data.root at the CUB_200_2011 folder."
        )

    def _class_names(self) -> list[str]:
        classes = read_index(self._data_folder() / "classes.txt")
        # "001.Black_footed_Albatross" -> "Black_footed_Albatross"; the ids give the label order
        return [classes[key].partition(".")[2] or classes[key] for key in sorted(classes, key=int)]

    def _pools(self) -> dict[str, Dataset]:
        folder = self._data_folder()
        images, labels, is_train = (read_index(folder / name) for name in INDEX_FILES[:3])
        if not (images.keys() == labels.keys() == is_train.keys()):
            raise DataError(
                f"{folder}: images.txt, image_class_labels.txt and train_test_split.txt list different image ids; "
                "restore them from the same CUB_200_2011.tgz"
            )
        pools: dict[str, tuple[list[Path], list[int]]] = {"fit": ([], []), "test": ([], [])}
        for key in sorted(images, key=int):
            path = folder / "images" / images[key]
            if not path.is_file():
                raise DataError(
                    f"{path} (image {key} of images.txt) is missing; restore images/ from CUB_200_2011.tgz"
                )
            paths, targets = pools["fit" if is_train[key] == "1" else "test"]
            paths.append(path)
            targets.append(int(labels[key]) - 1)  # CUB class ids start at 1
        return {name: ImageFileDataset(p, t, 3, self.image_size) for name, (p, t) in pools.items()}
