"""Trained models outside training: ``Predictor`` (probabilities of new images from a checkpoint, a run
folder or an exported file) and ``export_model`` (a ``torch.export`` program or an ONNX model that takes
uint8 images and gives probabilities, checked against its checkpoint before it is written)."""

from imgcls.inference.export import ExportCheck, export_model
from imgcls.inference.predictor import Prediction, Predictor

__all__ = ["ExportCheck", "Prediction", "Predictor", "export_model"]
