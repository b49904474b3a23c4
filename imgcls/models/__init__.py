from imgcls.models.backbones import available_backbones, create_backbone
from imgcls.models.classifier import ImageClassifier
from imgcls.models.heads import create_head
from imgcls.models.weights import load_backbone_weights

__all__ = [
    "ImageClassifier",
    "available_backbones",
    "create_backbone",
    "create_head",
    "load_backbone_weights",
]
