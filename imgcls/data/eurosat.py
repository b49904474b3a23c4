"""EuroSAT RGB: 27,000 64x64 Sentinel-2 images of 10 land-cover classes."""

from __future__ import annotations

from pathlib import Path

from imgcls.data.folder import ImageFolderDataModule
from imgcls.errors import DataError

EUROSAT_CLASSES = [
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
]


class EuroSATDataModule(ImageFolderDataModule):
    """EuroSAT RGB in its official layout: ``<root>/<Class>/<Class>_<n>.jpg`` (the ``2750/`` folder of EuroSAT.zip).

    ``root`` may also be the folder torchvision downloads into (``<root>/eurosat/2750``). EuroSAT has
    no official split: train/val/test come from a seeded stratified split.

    Args:
        root: the EuroSAT RGB folder.
        download: fetch EuroSAT.zip through torchvision in ``prepare_data`` when the images are missing.
        image_size: 64 is the native size; 224 for ImageNet-style transfer learning.
        **kwargs: see ``ImageFolderDataModule`` and ``ImageDataModule``.
    """

    # Per-channel mean and std of all 27,000 images, measured on the full dataset.
    default_mean = (0.3444, 0.3803, 0.4078)
    default_std = (0.2027, 0.1369, 0.1156)

    def __init__(self, root: str, download: bool = False, image_size: int | None = 64, **kwargs) -> None:
        super().__init__(root=root, image_size=image_size, **kwargs)
        self.download = download

    def _data_folder(self) -> Path:
        for candidate in (self.root, self.root / "eurosat" / "2750", self.root / "2750"):
            if all((candidate / name).is_dir() for name in EUROSAT_CLASSES):
                return candidate
        return self.root

    def _class_names(self) -> list[str]:
        folder = self._data_folder()
        missing = [name for name in EUROSAT_CLASSES if not (folder / name).is_dir()]
        if missing:
            raise DataError(
                f"EuroSAT RGB not found in {self.root}: missing class folders {', '.join(missing)}. Expected "
                f"{self.root}/<Class>/<Class>_<n>.jpg for the classes {', '.join(EUROSAT_CLASSES)} "
                "(the 2750/ folder of EuroSAT.zip), or set data.download=true on a machine with internet."
            )
        return list(EUROSAT_CLASSES)

    def prepare_data(self) -> None:
        if not self.download or self._data_folder() != self.root or (self.root / EUROSAT_CLASSES[0]).is_dir():
            return
        from torchvision.datasets import EuroSAT

        try:
            EuroSAT(str(self.root), download=True)
        except Exception as err:  # network errors come in many types
            raise DataError(
                f"downloading EuroSAT into {self.root} failed ({err}). Without internet, download EuroSAT.zip "
                f"elsewhere and unpack its 2750/ folder so that {self.root}/<Class>/<Class>_<n>.jpg exist."
            ) from err
