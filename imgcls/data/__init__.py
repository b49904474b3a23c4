from imgcls.data.base import ImageDataModule
from imgcls.data.eurosat import EuroSATDataModule
from imgcls.data.folder import ImageFolderDataModule
from imgcls.data.transforms import AUGMENTATIONS

__all__ = ["AUGMENTATIONS", "EuroSATDataModule", "ImageDataModule", "ImageFolderDataModule"]
