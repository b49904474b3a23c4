"""``Predictor``: class probabilities of new images from a checkpoint, a run folder or an exported file.

::

    predictor = Predictor.load("runs/eurosat_sample/version_0")
    predictions = predictor.predict(["tile.jpg", "more_tiles/"], top_k=3)

The images are decoded and resized as ``imgcls test`` decodes its images, so a checkpoint gives the same
probabilities as its test report. An input that is not an image is skipped with a warning that names it
(``Predictor.skipped``), and the others are still predicted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgcls import runs
from imgcls.contract import InputContract
from imgcls.errors import ConfigError, DataError
from imgcls.inference.inputs import Skipped, batches
from imgcls.inference.programs import (
    EagerRuntime,
    ExportedProgramRuntime,
    OnnxRuntime,
    ProbabilityModel,
    Runtime,
    load_checkpoint_model,
)

EXPORTED_SUFFIXES = {".pt2": ExportedProgramRuntime, ".onnx": OnnxRuntime}


@dataclass(frozen=True)
class Prediction:
    """The top classes of one image, most probable first."""

    name: str
    classes: list[str]
    probabilities: list[float]

    @property
    def label(self) -> str:
        return self.classes[0]

    @property
    def probability(self) -> float:
        return self.probabilities[0]


def resolve_source(source: str | Path) -> Path:
    """The file behind a source: a run folder means its ``best.ckpt``.

    Raises:
        ConfigError: nothing there, or a run folder without a checkpoint.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        best = path / runs.CHECKPOINTS / "best.ckpt"
        if not best.is_file():
            raise ConfigError(
                f"{path} holds no {runs.CHECKPOINTS}/best.ckpt: give a run folder (runs/<experiment>/version_N) "
                "that fit has trained, a .ckpt file, or an exported .pt2 or .onnx file"
            )
        return best
    if not path.is_file():
        raise ConfigError(
            f"{path} does not exist: give a checkpoint, a run folder or an exported .pt2 or .onnx file"
        )
    return path


def select_device(device: str | torch.device) -> torch.device:
    """``auto``: the GPU where there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"device {device!r} is not a device: {err}") from None


class Predictor:
    """Class probabilities of images from one trained model (see the module).

    Args:
        runtime: runs uint8 batches at the contract's size to probabilities.
        contract: what the model expects and what its outputs mean.
        source: where the model came from, for messages.
    """

    def __init__(self, runtime: Runtime, contract: InputContract, source: str) -> None:
        self.runtime = runtime
        self.contract = contract
        self.source = source
        self.skipped: list[Skipped] = []

    @classmethod
    def load(
        cls, source: str | Path, device: str | torch.device = "cpu", test_time_augmentation: str = "none"
    ) -> Predictor:
        """A predictor of a checkpoint (``.ckpt``), a run folder (its ``best.ckpt``), or a file of
        ``imgcls export`` (``.pt2``, ``.onnx``).

        Args:
            source: the model.
            device: ``cpu``, ``cuda``, ``cuda:1`` or ``auto``.
            test_time_augmentation: for a checkpoint, average over ``hflip``, ``dihedral`` or
                ``flip_translate`` views;
                an exported file does what it was exported with.

        Raises:
            ConfigError, DataError: one line naming the file and what is wrong with it.
        """
        path = resolve_source(source)
        device = select_device(device)
        exported = EXPORTED_SUFFIXES.get(path.suffix)
        if exported is not None:
            if test_time_augmentation != "none":
                raise ConfigError(
                    f"{path} was exported with its test-time augmentation; it cannot take another"
                )
            runtime = exported(path, device)
            return cls(runtime, runtime.contract, str(path))
        classifier, contract = load_checkpoint_model(path)
        model = ProbabilityModel(classifier, contract, test_time_augmentation)
        return cls(EagerRuntime(model, device), contract, str(path))

    @property
    def class_names(self) -> list[str]:
        return self.contract.class_names

    def probabilities(self, inputs: Any, batch_size: int = 64) -> tuple[list[str], np.ndarray]:
        """The names of the images (paths, or ``<input i>``) and their class probabilities (N, classes).

        Args:
            inputs: an image file, a folder of images, a PIL image, a numpy array (H, W[, C]), a uint8
                tensor (C, H, W) or (N, C, H, W), or a list of these.
            batch_size: images per batch.

        Raises:
            DataError: no input was an image (each one that is not is named in ``skipped``).
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be 1 or more, got {batch_size}")
        self.skipped = []
        names: list[str] = []
        outputs: list[np.ndarray] = []
        for batch_names, images in batches(inputs, self.contract, batch_size, self.skipped):
            names.extend(batch_names)
            outputs.append(self.runtime(images))
        if not names:
            raise DataError(f"none of the {len(self.skipped)} inputs is an image this model can take")
        return names, np.concatenate(outputs)

    def predict(self, inputs: Any, top_k: int = 5, batch_size: int = 64) -> list[Prediction]:
        """The ``top_k`` classes of each image with their probabilities (see ``probabilities``)."""
        names, probabilities = self.probabilities(inputs, batch_size)
        classes, top = top_classes(probabilities, top_k)
        return [
            Prediction(name, [self.contract.class_names[c] for c in row], [float(p) for p in probs])
            for name, row, probs in zip(names, classes, top, strict=True)
        ]


def top_classes(probabilities: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most probable classes of each row, most probable first (ties: the lower class), and
    their probabilities."""
    k = max(1, min(k, probabilities.shape[1]))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(probabilities, order, axis=1)
