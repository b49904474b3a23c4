"""An ``ImageClassifier`` from an imgcls checkpoint: read safely, rebuilt from its hyperparameters."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch

from imgcls.errors import ConfigError
from imgcls.models.classifier import ImageClassifier
from imgcls.runs import read_checkpoint_position


def read_checkpoint(path: Path, option: str = "--ckpt_path") -> dict[str, Any]:
    """An imgcls checkpoint's contents; a plain weights file, a foreign or a damaged one is a clear error.

    Args:
        path: the file.
        option: how the messages name it (``--ckpt_path PATH``).

    Raises:
        ConfigError: the file is not an imgcls checkpoint (no hyperparameters naming a backbone).
        DataError: the file is empty, truncated or not a checkpoint at all.
    """
    not_checkpoint = ConfigError(
        f"{option} {path} is not an imgcls checkpoint (no hyper_parameters naming a backbone): a plain weights "
        f"file. Pass it as --pretrained {path} with --backbone NAME, the architecture it was trained with."
    )
    if path.suffix == ".safetensors":
        raise not_checkpoint
    position = read_checkpoint_position(path)  # DataError for an empty, truncated or foreign file
    checkpoint = torch.load(path, map_location="cpu", weights_only=position["weights_only"], mmap=True)
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or not hparams.get("backbone") or "state_dict" not in checkpoint:
        raise not_checkpoint
    return checkpoint


def classifier_from_checkpoint(
    checkpoint: dict[str, Any], path: Path, option: str = "--ckpt_path"
) -> ImageClassifier:
    """The trained model of a checkpoint (``read_checkpoint``), in eval mode on the CPU.

    Its weights come from the checkpoint: nothing is downloaded, and a weights file the run started from
    need not exist any more.

    Raises:
        ConfigError: the weights do not fit the model the hyperparameters describe.
    """
    hparams = checkpoint["hyper_parameters"]
    accepted = inspect.signature(ImageClassifier).parameters
    arguments = {k: v for k, v in hparams.items() if k in accepted} | {"pretrained": False, "compile": False}
    model = ImageClassifier(**arguments)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise ConfigError(
            f"{option} {path} does not fit the {hparams['backbone']} model its hyperparameters describe "
            f"({str(err).splitlines()[0]}); was it saved by another version of the library?"
        ) from None
    return model.eval()
