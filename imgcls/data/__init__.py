from imgcls.data.base import ImageDataModule
from imgcls.data.cifar import CIFAR10DataModule
from imgcls.data.cub import CUBDataModule
from imgcls.data.eurosat import EuroSATDataModule
from imgcls.data.eurosat_ms import EuroSATMSDataModule
from imgcls.data.folder import ImageFolderDataModule
from imgcls.data.miniimagenet import MiniImageNetDataModule
from imgcls.data.mnist import FashionMNISTDataModule, MNISTDataModule
from imgcls.data.tinyimagenet import TinyImageNetDataModule
from imgcls.data.transforms import AUGMENTATIONS

__all__ = [
    "AUGMENTATIONS",
    "CIFAR10DataModule",
    "CUBDataModule",
    "EuroSATDataModule",
    "EuroSATMSDataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "MiniImageNetDataModule",
    "TinyImageNetDataModule",
]
