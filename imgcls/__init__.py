"""imgcls: image-classification experiments from YAML, on PyTorch Lightning, timm and torchvision."""

from imgcls.data import EuroSATDataModule, ImageDataModule, ImageFolderDataModule
from imgcls.models import ImageClassifier

__version__ = "0.1.0"
__all__ = ["EuroSATDataModule", "ImageClassifier", "ImageDataModule", "ImageFolderDataModule"]
