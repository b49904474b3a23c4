"""What a trained model expects of its input: the contract a checkpoint or an exported model carries.

A model trained by imgcls sees images decoded to ``in_chans`` channels (``RGB`` or ``L``), resized to
``image_size`` x ``image_size`` (antialiased, as ``imgcls.data.datasets.resize_uint8`` does), scaled to
[0, 1] and normalized with ``mean``/``std``; ``test`` may average its probabilities over
test-time-augmentation views. Every checkpoint imgcls writes records this under ``CHECKPOINT_KEY``
(``imgcls.callbacks.ContractWriter``); for older checkpoints it is rebuilt from the run's ``config.yaml``.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imgcls import runs
from imgcls.errors import ConfigError, DataError

CHECKPOINT_KEY = "imgcls_inference"
VERSION = 1
# how an image of another size reaches image_size: both sides scaled to image_size (the aspect ratio is
# not kept), bilinear with antialiasing, on uint8 (torchvision's resize); "none": the native size is used
RESIZE_RULES = ("square-antialias-bilinear", "none")


@dataclass(frozen=True)
class InputContract:
    """What a model expects of its input and what its outputs mean.

    Attributes:
        class_names: the output classes, in the order of the model's outputs.
        in_chans: channels of the input: 3 (RGB), 1 (grayscale) or more (multispectral bands).
        image_size: the side images are resized to; None where the model was trained on native sizes.
        mean: per-channel mean subtracted after scaling to [0, 1].
        std: per-channel standard deviation divided by after the mean.
        resize: how an image of another size is resized (``RESIZE_RULES``).
        test_time_augmentation: the views ``test`` averaged over (``none``, ``hflip``, ``dihedral``,
            ``flip_translate``).
        image_files: whether image files decode to the input (False for band stacks read otherwise).
    """

    class_names: list[str]
    in_chans: int
    image_size: int | None
    mean: list[float]
    std: list[float]
    resize: str = RESIZE_RULES[0]
    test_time_augmentation: str = "none"
    image_files: bool = True
    version: int = field(default=VERSION)

    @property
    def mode(self) -> str:
        """The PIL mode images are converted to (``RGB``, ``L``); empty for band stacks."""
        return {1: "L", 3: "RGB"}.get(self.in_chans, "") if self.image_files else ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> InputContract:
        """The contract of a checkpoint's or an exported file's record.

        Raises:
            DataError: the record is not an imgcls contract (``source`` names where it came from).
        """
        try:
            contract = cls(
                class_names=[str(c) for c in values["class_names"]],
                in_chans=int(values["in_chans"]),
                image_size=None if values.get("image_size") is None else int(values["image_size"]),
                mean=[float(m) for m in values["mean"]],
                std=[float(s) for s in values["std"]],
                resize=str(values.get("resize", RESIZE_RULES[0])),
                test_time_augmentation=str(values.get("test_time_augmentation", "none")),
                image_files=bool(values.get("image_files", True)),
                version=int(values.get("version", VERSION)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{source} has no valid imgcls input contract ({err!r} is missing or wrong)"
            ) from None
        if len(contract.mean) != contract.in_chans or len(contract.std) != contract.in_chans:
            raise DataError(f"{source}: its mean and std do not have {contract.in_chans} values")
        return contract


def normalization(mean: Any, std: Any, in_chans: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std: one value stands for every channel.

    Raises:
        ConfigError: neither one value nor one per channel.
    """
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if len(mean) == 1 and in_chans > 1:
        mean, std = mean * in_chans, std * in_chans
    if len(mean) != in_chans or len(std) != in_chans:
        raise ConfigError(
            f"data.mean and data.std need {in_chans} values (one per channel), got {len(mean)} and {len(std)}"
        )
    return mean, std


def contract_of_checkpoint(checkpoint: dict[str, Any], path: Path) -> InputContract:
    """A checkpoint's contract: its own record, else (checkpoints written before there was one) rebuilt
    from its hyperparameters and its run folder's ``config.yaml``.

    Raises:
        DataError: neither is there, or they do not describe an imgcls model.
    """
    if CHECKPOINT_KEY in checkpoint:
        return InputContract.from_dict(checkpoint[CHECKPOINT_KEY], f"checkpoint {path}")
    hparams = checkpoint.get("hyper_parameters") or {}
    run_dir = runs.run_dir_of_checkpoint(path)
    config_file = run_dir / runs.CONFIG if run_dir is not None else None
    if not hparams.get("backbone") or config_file is None or not config_file.is_file():
        raise DataError(
            f"{path} records no input contract (a checkpoint from before imgcls wrote one, or not an imgcls "
            f"checkpoint) and has no run folder with {runs.CONFIG} beside it to rebuild it from; keep the "
            f"checkpoint in its runs/<experiment>/version_N/{runs.CHECKPOINTS}/ folder"
        )
    config = yaml.safe_load(config_file.read_text()) or {}
    return contract_of_config(config, hparams, str(config_file))


def contract_of_config(config: dict[str, Any], hparams: dict[str, Any], source: str) -> InputContract:
    """The contract of a run from its resolved config and the model's hyperparameters."""
    data = config.get("data") or {}
    arguments = data.get("init_args") or {}
    try:
        module, _, name = str(data["class_path"]).rpartition(".")
        datamodule = getattr(importlib.import_module(module), name)
    except (KeyError, ImportError, AttributeError) as err:
        raise DataError(f"{source}: its data section names no datamodule class ({err})") from None
    in_chans = int(hparams.get("in_chans") or 3)
    mean = arguments.get("mean") or getattr(datamodule, "default_mean", None)
    std = arguments.get("std") or getattr(datamodule, "default_std", None)
    if mean is None or std is None or "_image_reader" in vars(datamodule):
        raise DataError(
            f"{source}: {name} reads its images its own way; its input contract cannot be rebuilt"
        )
    if in_chans == 1 and len(mean) == 3:  # a grayscale folder of an RGB-statistics datamodule
        mean, std = [sum(mean) / 3], [sum(std) / 3]
    mean, std = normalization(mean, std, in_chans)
    names = hparams.get("class_names") or [str(i) for i in range(int(hparams.get("num_classes", 0)))]
    model = config.get("model") or {}
    model_args = model.get("init_args", model) if isinstance(model, dict) else {}
    image_size = arguments.get("image_size")
    return InputContract(
        class_names=[str(n) for n in names],
        in_chans=in_chans,
        image_size=int(image_size) if image_size else None,
        mean=mean,
        std=std,
        resize=RESIZE_RULES[0] if image_size else "none",
        test_time_augmentation=str(model_args.get("test_time_augmentation") or "none"),
    )
