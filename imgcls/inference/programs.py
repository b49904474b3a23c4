"""A trained model as one function from uint8 images to class probabilities, in three runtimes: eager
PyTorch (from a checkpoint), a ``torch.export`` program (``.pt2``) and ONNX (``.onnx``, run by
onnxruntime). Exported files carry the input contract (``imgcls.contract``) beside the program."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from imgcls.contract import InputContract, contract_of_checkpoint
from imgcls.errors import ConfigError, DataError
from imgcls.models.checkpoints import classifier_from_checkpoint, read_checkpoint
from imgcls.models.classifier import TTA_MODES, tta_probabilities

CONTRACT_FILE = "imgcls.json"  # the contract inside a .pt2 archive
CONTRACT_KEY = "imgcls.contract"  # the contract in an ONNX model's metadata
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"


class ProbabilityModel(nn.Module):
    """uint8 (N, C, H, W) images at the contract's size -> class probabilities (N, classes).

    Scales to [0, 1] and normalizes as the datamodule's batch transform does for ``test``, runs the
    classifier, and averages the probabilities over the test-time-augmentation views. This module is
    what ``imgcls export`` writes, so the exported programs take images, not tensors to prepare.
    """

    def __init__(self, classifier: nn.Module, contract: InputContract, test_time_augmentation: str = "none"):
        super().__init__()
        if test_time_augmentation not in TTA_MODES:
            raise ConfigError(
                f"test_time_augmentation is one of {', '.join(TTA_MODES)}, not {test_time_augmentation!r}"
            )
        self.classifier = classifier
        self.test_time_augmentation = test_time_augmentation
        self.register_buffer("mean", torch.tensor(contract.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(contract.std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        normalized = (images.float() / 255 - self.mean) / self.std
        return tta_probabilities(self.classifier, normalized, self.test_time_augmentation)


def load_checkpoint_model(path: Path) -> tuple[nn.Module, InputContract]:
    """The classifier of an imgcls checkpoint and its input contract.

    Raises:
        ConfigError, DataError: a file that is not an imgcls checkpoint, a damaged one, or one without a
            contract and without the run folder to rebuild it from.
    """
    checkpoint = read_checkpoint(path, option="checkpoint")
    contract = contract_of_checkpoint(checkpoint, path)
    return classifier_from_checkpoint(checkpoint, path, option="checkpoint"), contract


class Runtime:
    """Runs a batch of uint8 images; gives probabilities as a float32 numpy array."""

    name = "eager"

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        raise NotImplementedError


class EagerRuntime(Runtime):
    """A ``ProbabilityModel`` in eager PyTorch on ``device``."""

    name = "eager"

    def __init__(self, model: ProbabilityModel, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.device = device

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.model(images.to(self.device, non_blocking=True)).float().cpu().numpy()


class ExportedProgramRuntime(Runtime):
    """A ``torch.export`` program saved by ``imgcls export --format torch``."""

    name = "torch.export"

    def __init__(self, path: Path, device: torch.device) -> None:
        extra = {CONTRACT_FILE: ""}
        try:
            program = torch.export.load(str(path), extra_files=extra)
        except Exception as err:  # torch raises many kinds for a file that is no program
            raise DataError(f"{path} is not a torch.export program ({str(err).splitlines()[0]})") from None
        if not extra[CONTRACT_FILE]:
            raise DataError(f"{path} has no imgcls input contract: it was not written by `imgcls export`")
        self.contract = InputContract.from_dict(_json(extra[CONTRACT_FILE], path), str(path))
        self.module = program.module().to(device)
        self.device = device

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.module(images.to(self.device)).float().cpu().numpy()


class OnnxRuntime(Runtime):
    """An ONNX model saved by ``imgcls export --format onnx``, run by onnxruntime (``pip install
    'imgcls[export]'``)."""

    name = "onnxruntime"

    def __init__(self, path: Path, device: torch.device) -> None:
        onnxruntime = import_onnxruntime()
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if device.type == "cuda"
            else ["CPUExecutionProvider"]
        )
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as err:  # onnxruntime's errors have no common base class
            raise DataError(
                f"{path} is not an ONNX model onnxruntime can load ({str(err).splitlines()[0]})"
            ) from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if CONTRACT_KEY not in metadata:
            raise DataError(
                f"{path} has no imgcls metadata ({CONTRACT_KEY}): an ONNX model from elsewhere. Its input "
                "preprocessing and class names are unknown; export the checkpoint with `imgcls export`"
            )
        self.contract = InputContract.from_dict(_json(metadata[CONTRACT_KEY], path), str(path))

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: images.cpu().numpy()})[0]


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "ONNX models need onnxruntime: pip install 'imgcls[export]' (or pip install onnxruntime)"
        ) from None
    return onnxruntime


def _json(text: str, path: Path) -> dict[str, Any]:
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, dict):
        raise DataError(f"{path}: its imgcls input contract is not readable JSON")
    return values
