"""EuroSAT multispectral: 27,000 64x64 Sentinel-2 patches with all 13 bands, as GeoTIFFs."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from imgcls.data.base import ImageDataModule
from imgcls.data.datasets import ImageFileDataset
from imgcls.data.eurosat import EUROSAT_CLASSES
from imgcls.errors import ConfigError, DataError

# Bands in their order inside every EuroSATallBands file (B8A comes last, as TorchGeo documents it),
# each with its mean and std over all 27,000 patches in digital numbers (TorchGeo's EuroSAT statistics).
BAND_STATS = {
    "B01": (1354.41, 245.72),
    "B02": (1118.24, 333.01),
    "B03": (1042.93, 395.09),
    "B04": (947.63, 593.75),
    "B05": (1199.47, 566.42),
    "B06": (1999.79, 861.18),
    "B07": (2369.22, 1086.63),
    "B08": (2296.83, 1117.98),
    "B09": (732.08, 404.92),
    "B10": (12.11, 4.78),
    "B11": (1819.01, 1002.59),
    "B12": (1118.92, 761.30),
    "B8A": (2594.14, 1231.59),
}
BAND_NAMES = tuple(BAND_STATS)
# Sentinel-2 L1C quantification: digital number / 10000 = top-of-atmosphere reflectance.
REFLECTANCE_SCALE = 10000.0
_LAYOUTS = ("", "EuroSATallBands", "ds/images/remote_sensing/otherDatasets/sentinel_2/tif")


def read_bands(path: str | Path, band_indices: Sequence[int]) -> torch.Tensor:
    """The selected bands of a 13-band EuroSAT GeoTIFF as float32 reflectance, shape (bands, H, W)."""
    import tifffile  # imported here so that `import imgcls` works in environments made before it was required

    try:
        array = tifffile.imread(path)
    except (OSError, ValueError, tifffile.TiffFileError) as err:
        raise DataError(
            f"cannot read GeoTIFF {path}: {err}. Replace or delete the file, then run again."
        ) from err
    if array.ndim == 3 and array.shape[-1] == len(BAND_NAMES):  # stored band-interleaved (H, W, bands)
        array = array.transpose(2, 0, 1)
    if array.ndim != 3 or array.shape[0] != len(BAND_NAMES):
        raise DataError(f"{path} has shape {array.shape}; EuroSAT multispectral files hold 13 bands of 64x64")
    selected = np.ascontiguousarray(array[list(band_indices)], dtype=np.float32)
    return torch.from_numpy(selected / REFLECTANCE_SCALE)


class EuroSATMSDataModule(ImageDataModule):
    """EuroSAT multispectral (EuroSATallBands): ``<root>/<Class>/<Class>_<n>.tif``, 13 bands each.

    Images reach the model as reflectance (digital number / 10000); normalization uses the per-band
    statistics of the selected bands, and ``in_chans`` (linked to the model) is the number of bands.
    ``mean``/``std`` overrides are in reflectance units, one value per selected band.

    Args:
        root: the EuroSATallBands folder (or a folder holding it, or TorchGeo's ``ds/...`` tree).
        bands: band names in the order the model sees them; None keeps all 13 in file order
            (B01, B02, B03, B04, B05, B06, B07, B08, B09, B10, B11, B12, B8A).
        image_size: 64 is the native size.
        **kwargs: see ``ImageDataModule``. Colour augmentations need 1 or 3 bands.
    """

    def __init__(
        self, root: str, bands: list[str] | None = None, image_size: int | None = 64, **kwargs
    ) -> None:
        super().__init__(root=root, image_size=image_size, **kwargs)
        self.bands = list(bands) if bands is not None else list(BAND_NAMES)
        unknown = [b for b in self.bands if b not in BAND_NAMES]
        if unknown or not self.bands or len(set(self.bands)) != len(self.bands):
            problem = f"unknown band {', '.join(unknown)}" if unknown else "empty or repeated band names"
            raise ConfigError(f"data.bands: {problem}; choose distinct names from {', '.join(BAND_NAMES)}")
        self.band_indices = [BAND_NAMES.index(b) for b in self.bands]
        # the statistics follow the selection, in reflectance units like the images
        self.default_mean = [BAND_STATS[b][0] / REFLECTANCE_SCALE for b in self.bands]
        self.default_std = [BAND_STATS[b][1] / REFLECTANCE_SCALE for b in self.bands]

    @property
    def in_chans(self) -> int:
        return len(self.bands)

    def _data_folder(self) -> Path:
        for layout in _LAYOUTS:
            if all((self.root / layout / name).is_dir() for name in EUROSAT_CLASSES):
                return self.root / layout
        missing = [name for name in EUROSAT_CLASSES if not (self.root / name).is_dir()]
        raise DataError(
            f"EuroSAT multispectral not found in {self.root}: missing class folders {', '.join(missing)}. Expected "
            f"{self.root}/<Class>/<Class>_<n>.tif (the EuroSATallBands folder) for the classes {', '.join(EUROSAT_CLASSES)}."
        )

    def _class_names(self) -> list[str]:
        self._data_folder()
        return list(EUROSAT_CLASSES)

    def _pools(self) -> dict[str, Dataset]:
        folder = self._data_folder()
        paths: list[Path] = []
        targets: list[int] = []
        for target, name in enumerate(self.class_names):
            files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in (".tif", ".tiff"))
            if not files:
                other = (
                    "JPEG files: that is EuroSAT RGB, use imgcls.EuroSATDataModule"
                    if any((folder / name).glob("*.jpg"))
                    else "no .tif files"
                )
                raise DataError(
                    f"class folder {folder / name} holds {other}; EuroSATMSDataModule reads 13-band .tif files"
                )
            paths += files
            targets += [target] * len(files)
        return {"fit": ImageFileDataset(paths, targets, self.in_chans, self.image_size, self._image_reader())}

    def _image_reader(self) -> partial:
        # a partial of a module-level function pickles, as loader workers need
        return partial(read_bands, band_indices=tuple(self.band_indices))
