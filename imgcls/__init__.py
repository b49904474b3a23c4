"""imgcls: image-classification experiments from YAML, on PyTorch Lightning, timm and torchvision."""

from imgcls.data import (
    CIFAR10DataModule,
    CUBDataModule,
    EuroSATDataModule,
    EuroSATMSDataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    ImageFolderDataModule,
    MiniImageNetDataModule,
    MNISTDataModule,
    TinyImageNetDataModule,
)
from imgcls.models import ImageClassifier

__version__ = "0.1.0"
__all__ = [
    "CIFAR10DataModule",
    "CUBDataModule",
    "EuroSATDataModule",
    "EuroSATMSDataModule",
    "FashionMNISTDataModule",
    "ImageClassifier",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
    "MiniImageNetDataModule",
    "TinyImageNetDataModule",
]
