"""Any dataset stored as class subfolders, with an optional separate test folder."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from imgcls.data.base import ImageDataModule, absolute_folder
from imgcls.data.datasets import ImageFileDataset, list_class_folders, scan_class_folders
from imgcls.errors import ConfigError, DataError


class ImageFolderDataModule(ImageDataModule):
    """Images in ``root/<class>/<file>``; a test set in ``test_root/<class>/<file>`` when given.

    Without ``test_root`` the test split is carved from ``root`` by ``test_fraction``. Images of mixed
    sizes and modes load; set ``image_size`` when their sizes differ.

    Args:
        root: folder of class subfolders (Intel: ``seg_train``).
        test_root: optional folder of the same class subfolders used as the test set (Intel: ``seg_test``).
        in_chans: 3 decodes every image as RGB, 1 as grayscale.
        **kwargs: see ``ImageDataModule``.
    """

    def __init__(self, root: str, test_root: str | None = None, in_chans: int = 3, **kwargs) -> None:
        super().__init__(root=root, **kwargs)
        if in_chans not in (1, 3):
            raise ConfigError(
                f"data.in_chans must be 1 (grayscale) or 3 (RGB) for image files, got {in_chans}"
            )
        self.test_root = absolute_folder(test_root) if test_root else None
        self._in_chans = in_chans
        if in_chans == 1 and len(self.default_mean) == 3:
            # grayscale decoding averages the colour channels, so do the statistics
            self.default_mean = (sum(self.default_mean) / 3,)
            self.default_std = (sum(self.default_std) / 3,)

    @property
    def in_chans(self) -> int:
        return self._in_chans

    def _data_folder(self) -> Path:
        return self.root

    def _class_names(self) -> list[str]:
        folder = self._data_folder()
        if not folder.is_dir():
            raise DataError(
                f"dataset folder {folder} does not exist. Point data.root at a folder of class subfolders "
                "(<root>/<class name>/<image files>)."
            )
        names = list_class_folders(folder)
        if not names:
            raise DataError(
                f"{folder} holds no class subfolders; expected <root>/<class name>/<image files>."
            )
        return names

    def _pools(self) -> dict[str, Dataset]:
        paths, targets, _ = scan_class_folders(self._data_folder(), self.class_names)
        pools = {"fit": ImageFileDataset(paths, targets, self.in_chans, self.image_size)}
        if self.test_root is not None:
            found = list_class_folders(self.test_root) if self.test_root.is_dir() else []
            unknown = sorted(set(found) - set(self.class_names))
            if unknown:
                raise DataError(
                    f"test folder {self.test_root} has classes missing from {self._data_folder()}: {', '.join(unknown)}"
                )
            test_names = [name for name in self.class_names if name in found]
            paths, local_targets, _ = scan_class_folders(self.test_root, test_names)
            targets = [self.class_names.index(test_names[t]) for t in local_targets]
            pools["test"] = ImageFileDataset(paths, targets, self.in_chans, self.image_size)
        return pools
