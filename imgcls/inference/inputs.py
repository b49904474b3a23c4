"""New images as a model's input: files, folders, PIL images, numpy arrays or uint8 tensors, decoded and
resized exactly as ``imgcls test`` decodes its images (``imgcls.data.datasets``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from imgcls.contract import InputContract
from imgcls.data.datasets import image_to_tensor, images_of_folder, read_image, resize_uint8
from imgcls.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Skipped:
    """An input that is not an image, and why."""

    name: str
    reason: str


def expand(inputs: Any) -> list[Any]:
    """One item per image: a folder becomes its image files (sorted), a batch tensor its images.

    Raises:
        DataError: a path that does not exist.
    """
    if isinstance(inputs, (str, Path, Image.Image, np.ndarray)) or (
        isinstance(inputs, torch.Tensor) and inputs.ndim <= 3
    ):
        inputs = [inputs]
    items: list[Any] = []
    for item in inputs:
        if isinstance(item, (str, Path)):
            path = Path(item).expanduser()
            if path.is_dir():
                items.extend(images_of_folder(path))
            elif path.is_file():
                items.append(path)
            else:
                raise DataError(
                    f"{path} does not exist: give image files, folders of images or images in memory"
                )
        elif isinstance(item, torch.Tensor) and item.ndim == 4:
            items.extend(item)
        else:
            items.append(item)
    return items


def name_of(item: Any, position: int) -> str:
    """How the predictions name an input: a file by its path, anything else by its position."""
    return str(item) if isinstance(item, Path) else f"<input {position}>"


def decode(item: Any, contract: InputContract) -> torch.Tensor:
    """One input as a uint8 (C, H, W) tensor at the contract's size.

    Files and PIL images are converted to the model's channels as in training (grayscale or RGBA to
    RGB, RGB to grayscale); arrays and tensors of another channel count go through PIL the same way.

    Raises:
        DataError: not an image, or an image this model cannot take.
    """
    if isinstance(item, Path):
        if not contract.image_files:
            raise DataError(
                f"{item}: this model reads {contract.in_chans}-band images its own way; pass tensors"
            )
        image = read_image(item, contract.in_chans)
    elif isinstance(item, Image.Image):
        image = _from_pil(item, contract)
    elif isinstance(item, (np.ndarray, torch.Tensor)):
        image = _from_array(item, contract)
    else:
        raise DataError(
            f"cannot classify a {type(item).__name__}: give a path, a PIL image, an array or a tensor"
        )
    return resize_uint8(image, contract.image_size)


def _from_pil(image: Image.Image, contract: InputContract) -> torch.Tensor:
    if not contract.mode:
        raise DataError(f"this model takes {contract.in_chans}-band images, not a PIL image")
    return image_to_tensor(image, contract.in_chans)


def _from_array(array: np.ndarray | torch.Tensor, contract: InputContract) -> torch.Tensor:
    """An array in HWC/HW layout (numpy) or CHW/HW (torch), uint8."""
    tensor = torch.as_tensor(array) if isinstance(array, np.ndarray) else array.detach().cpu()
    if tensor.dtype != torch.uint8:
        raise DataError(
            f"images in memory must be uint8 (0-255), got {tensor.dtype}; a float image: (x * 255).byte()"
        )
    if tensor.ndim == 2:
        tensor = tensor[None] if isinstance(array, torch.Tensor) else tensor[:, :, None]
    if tensor.ndim != 3:
        raise DataError(f"an image in memory has 2 or 3 dimensions, got shape {tuple(tensor.shape)}")
    chw = tensor if isinstance(array, torch.Tensor) else tensor.permute(2, 0, 1)
    if chw.shape[0] == contract.in_chans:
        return chw.contiguous()
    if not contract.mode or chw.shape[0] not in (1, 3, 4):
        raise DataError(f"the model takes {contract.in_chans} channels, the image has {chw.shape[0]}")
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[chw.shape[0]]
    hwc = chw.permute(1, 2, 0).numpy()
    return image_to_tensor(Image.fromarray(hwc[:, :, 0] if mode == "L" else hwc, mode), contract.in_chans)


def batches(
    inputs: Any, contract: InputContract, batch_size: int, skipped: list[Skipped]
) -> Iterator[tuple[list[str], torch.Tensor]]:
    """Names and uint8 (N, C, H, W) batches of the inputs; an input that is not an image is named in
    ``skipped`` (and a warning) and the rest go on. Images of different sizes (a model trained on native
    sizes) go in batches of their own."""
    names: list[str] = []
    images: list[torch.Tensor] = []
    for position, item in enumerate(expand(inputs)):
        name = name_of(item, position)
        try:
            image = decode(item, contract)
        except DataError as err:
            log.warning("skipped %s: %s", name, err)
            skipped.append(Skipped(name, str(err)))
            continue
        if images and (len(images) == batch_size or image.shape != images[0].shape):
            yield names, torch.stack(images)
            names, images = [], []
        names.append(name)
        images.append(image)
    if images:
        yield names, torch.stack(images)
