"""Augmentation presets, applied to whole batches on the model's device.

Every preset draws random parameters per sample inside a batch (torchvision.transforms.v2 draws one
set per call, so a batch would be flipped all or none). Flips and whole-pixel shifts are
``RandomShiftFlip``, plain tensor indexing that also runs on the uint8 batch before it becomes float;
the geometric and colour policies are kornia modules on float images in [0, 1]. Inputs have shape
(B, C, H, W); normalization comes after augmentation.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from imgcls.errors import ConfigError

AUGMENTATIONS = {
    "none": "no augmentation",
    "flip": "random horizontal flip",
    "flip_translate": "horizontal flip + random translation up to max_translate_px pixels (EuroSAT study: 30 px at 224)",
    "overhead": "the 8 flips and 90-degree rotations + translation up to max_translate_px (satellite and aerial views have no up)",
    "shift_flip": "width/height shift up to 10% + horizontal flip (MNIST / CIFAR-10 study)",
    "intel_study": "rotation up to 90 deg, shift 20%, shear, zoom 0.8-1.2, horizontal flip (Intel study)",
    "trivialaugment": "TrivialAugment + horizontal flip (a strong modern default)",
    "randaugment": "RandAugment (2 ops) + horizontal flip",
}

# Colour operations of the auto-augment policies assume RGB (or grayscale) images.
_COLOUR_POLICIES = {"trivialaugment", "randaugment"}


def check_augmentation(name: str, option: str = "data.augment") -> None:
    """Refuse a name that is not one of ``AUGMENTATIONS``.

    Args:
        name: the preset's name.
        option: the setting it came from, as the error names it (``--finetune_augment``).

    Raises:
        ConfigError: ``name`` is no preset; the message lists them.
    """
    if name not in AUGMENTATIONS:
        raise ConfigError(f"unknown {option} {name!r}; choose one of: {', '.join(AUGMENTATIONS)}")


ALTERNATING_PRESETS = ("flip", "flip_translate", "overhead")


def check_alternating_flips(augment: str, alternate_flips: bool) -> None:
    """Refuse ``alternate_flips`` with a preset whose flips are not ``RandomShiftFlip``'s."""
    if alternate_flips and augment not in ALTERNATING_PRESETS:
        raise ConfigError(
            f"data.alternate_flips alternates the mirror of the {', '.join(ALTERNATING_PRESETS)} presets, "
            f"not of {augment!r}; choose one of those presets or set data.alternate_flips to false"
        )


def alternating_flips(indices: torch.Tensor, epoch: int) -> torch.Tensor:
    """Which images of a batch to mirror this epoch: a fixed pseudo-random half of the dataset's indices
    in even epochs, the other half in odd ones (airbench's alternating flip)."""
    # one bit of a multiplicative hash of the index: fixed for an image, balanced over the dataset
    half = ((indices.long() * 0x9E3779B1) >> 16) & 1
    return (half + epoch) % 2 == 1


class RandomShiftFlip(nn.Module):
    """Shift each image by up to ``max_px`` whole pixels each way and flip it horizontally with p=0.5.

    The shift is a crop of the padded batch at a random offset per sample, the flip a choice per
    sample between the padded batch and its mirror; both are one indexing step over a strided view,
    for any dtype and device. kornia's ``RandomHorizontalFlip`` + ``RandomCrop`` give the same
    images but cost 7.8 ms per batch of 128x3x64x64 on one CPU thread; this costs 1.8 ms on the
    uint8 batch (measured side by side), so it can run before the conversion to float.

    Args:
        max_px: largest shift in pixels; 0 flips only.
        fill: ``constant`` (zeros, torchvision's ``RandomAffine``) or ``replicate`` (edge pixels,
            Keras' ``nearest``).
        flip: whether to flip at all.
        dihedral: also flip vertically and transpose (square images), each with p=0.5: all 8 flips
            and quarter turns, equally likely. For views from above, which have no up.
        alternating: mirror by ``alternating_flips`` of the batch's dataset indices and the epoch
            instead of a coin toss (when the call gives them).
    """

    works_on_uint8 = True

    def __init__(
        self,
        max_px: int = 0,
        fill: str = "constant",
        flip: bool = True,
        dihedral: bool = False,
        alternating: bool = False,
    ) -> None:
        super().__init__()
        if max_px < 0:
            raise ConfigError(f"the largest shift must be 0 or more pixels, got {max_px}")
        if fill not in ("constant", "replicate"):
            raise ConfigError(f"fill must be 'constant' or 'replicate', got {fill!r}")
        self.max_px, self.fill, self.flip, self.dihedral = max_px, fill, flip, dihedral
        self.alternating = alternating

    def forward(
        self, images: torch.Tensor, indices: torch.Tensor | None = None, epoch: int = 0
    ) -> torch.Tensor:
        b, _, h, w = images.shape
        device = images.device
        padded = images
        if self.max_px:
            pad = (self.max_px,) * 4
            if self.fill == "replicate" and images.dtype == torch.uint8 and device.type != "cpu":
                padded = F.pad(images.float(), pad, mode="replicate").to(torch.uint8)
            else:
                padded = F.pad(images, pad, mode=self.fill)
        source = torch.arange(b, device=device)
        if self.flip:
            # the mirror of a padded image, cropped at a uniform offset, is the crop's mirror
            if self.alternating and indices is not None:
                mirrored = alternating_flips(indices.to(device), epoch).long()
            else:
                mirrored = torch.randint(0, 2, (b,), device=device)
            source = source + b * mirrored
            padded = torch.cat([padded, padded.flip(-1)])
        if self.max_px:
            dy, dx = torch.randint(0, 2 * self.max_px + 1, (2, b), device=device)
            windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # (B', C, 2m+1, 2m+1, H, W), a view
            out = windows[source, :, dy, dx]
        else:
            out = padded[source]
        if self.dihedral:
            out = self._flip_where(out, out.flip(-2))
            if h == w:
                out = self._flip_where(out, out.transpose(-1, -2))
        return out

    @staticmethod
    def _flip_where(images: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
        chosen = torch.rand(images.shape[0], device=images.device) < 0.5
        return torch.where(chosen.view(-1, 1, 1, 1), changed, images)

    def extra_repr(self) -> str:
        return (
            f"max_px={self.max_px}, fill={self.fill!r}, flip={self.flip}, dihedral={self.dihedral}, "
            f"alternating={self.alternating}"
        )


def build_augmentation(
    name: str,
    image_size: int | tuple[int, int],
    in_chans: int,
    max_translate_px: int = 30,
    alternate_flips: bool = False,
) -> nn.Module:
    """Return the batch augmentation module of preset ``name``.

    Args:
        name: one of ``AUGMENTATIONS``.
        image_size: (height, width) of the images the preset sees, or the side of square ones.
        in_chans: channel count; colour policies need 1 or 3.
        max_translate_px: largest shift of ``flip_translate``, in pixels at ``image_size``.
        alternate_flips: mirror by ``alternating_flips`` (``flip``, ``flip_translate``, ``overhead``).
    """
    check_augmentation(name)
    check_alternating_flips(name, alternate_flips)
    if name in _COLOUR_POLICIES and in_chans not in (1, 3):
        raise ConfigError(
            f"augmentation {name!r} uses colour operations and needs 1 or 3 channels, the data has {in_chans}; "
            "use 'flip', 'flip_translate' or 'shift_flip'"
        )
    if name == "none":
        return nn.Identity()
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if name == "flip":
        return RandomShiftFlip(alternating=alternate_flips)
    if name == "flip_translate":
        return RandomShiftFlip(max_translate_px, "constant", alternating=alternate_flips)
    if name == "overhead":
        return RandomShiftFlip(max_translate_px, "constant", dihedral=True, alternating=alternate_flips)
    if name == "shift_flip":
        return RandomShiftFlip(round(0.1 * min(size)), "replicate")
    # kornia only for its presets: importing it costs every command 0.16 s at start-up
    import kornia.augmentation as K
    from kornia.augmentation.auto import RandAugment, TrivialAugment

    flip = K.RandomHorizontalFlip()
    if name == "intel_study":
        return K.AugmentationSequential(
            K.RandomAffine(
                degrees=90.0, translate=(0.2, 0.2), scale=(0.8, 1.2), shear=11.5, padding_mode="border"
            ),
            flip,
        )
    if name == "trivialaugment":
        return nn.Sequential(TrivialAugment(), K.AugmentationSequential(flip))
    return nn.Sequential(RandAugment(n=2, m=9), K.AugmentationSequential(flip))


def scaled_size(size: tuple[int, int], scale: float, multiple: int = 8) -> tuple[int, int]:
    """``size`` times ``scale``, each side rounded to a multiple of ``multiple`` and at most ``size``."""
    if scale >= 1.0:
        return size
    return tuple(min(side, max(multiple, round(side * scale / multiple) * multiple)) for side in size)


class BatchTransform(nn.Module):
    """uint8 batch -> float in [0, 1] -> augmentation (when training) -> normalization, on any device.

    The augmentation is built at the first training batch, which gives its image size; the mean and
    std tensors once per device and dtype.

    Args:
        augment: name of a training augmentation preset (``AUGMENTATIONS``).
        mean: per-channel normalization mean in [0, 1] units.
        std: per-channel normalization standard deviation.
        in_chans: channels of the images.
        max_translate_px: largest shift of the ``flip_translate`` and ``overhead`` presets, in pixels.
        alternate_flips: mirror by ``alternating_flips`` of the batch's indices and the epoch.
    """

    def __init__(
        self,
        augment: str,
        mean: Sequence[float],
        std: Sequence[float],
        in_chans: int,
        max_translate_px: int = 30,
        alternate_flips: bool = False,
    ) -> None:
        super().__init__()
        check_augmentation(augment)  # here, not at the first training batch that builds the preset
        check_alternating_flips(augment, alternate_flips)
        self.alternate_flips = alternate_flips
        self.augment = augment
        self.mean, self.std = list(mean), list(std)
        self.in_chans = in_chans
        self.max_translate_px = max_translate_px
        self.augmentation: nn.Module | None = None
        self._normalization: dict[str, Any] = {}

    def forward(
        self,
        images: torch.Tensor,
        train: bool,
        size: tuple[int, int] | None = None,
        indices: torch.Tensor | None = None,
        epoch: int = 0,
    ) -> torch.Tensor:
        """``size``: (height, width) the batch is scaled to after augmentation (progressive resizing);
        ``indices`` (the images' dataset indices) and ``epoch`` choose the alternating flips."""
        owned = images.dtype == torch.uint8
        augmentation = None
        if train and self.augment != "none":
            if self.augmentation is None:
                self.augmentation = build_augmentation(
                    self.augment,
                    tuple(images.shape[-2:]),
                    self.in_chans,
                    self.max_translate_px,
                    self.alternate_flips,
                )
            augmentation = self.augmentation
        # shifts and flips move bytes, a quarter of the memory traffic of the float batch
        if self.alternate_flips and augmentation is not None:
            augmentation = functools.partial(augmentation, indices=indices, epoch=epoch)
        if augmentation is not None and owned and getattr(self.augmentation, "works_on_uint8", False):
            images, augmentation = augmentation(images), None
        if owned:
            images = images.float().div_(255)
        if augmentation is not None:
            images = augmentation(images)
        if size is not None and tuple(images.shape[-2:]) != tuple(size):
            images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
            owned = True
        mean, std = self._normalization_tensors(images.device, images.dtype)
        # in place only on a tensor made here: a float batch passed in is the caller's
        return images.sub_(mean).div_(std) if owned else (images - mean) / std

    def _normalization_tensors(
        self, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # built once per device: a fresh host-to-GPU copy every batch would wait for the GPU
        key = (str(device), dtype)
        if self._normalization.get("key") != key:
            self._normalization = {
                "key": key,
                "mean": torch.tensor(self.mean, device=device, dtype=dtype).view(1, -1, 1, 1),
                "std": torch.tensor(self.std, device=device, dtype=dtype).view(1, -1, 1, 1),
            }
        return self._normalization["mean"], self._normalization["std"]

    def extra_repr(self) -> str:
        return f"augment={self.augment!r}, in_chans={self.in_chans}, max_translate_px={self.max_translate_px}"
