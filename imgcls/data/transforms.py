"""Augmentation presets, applied to whole batches on the model's device.

Every preset is built from kornia modules, which draw random parameters per sample inside a batch
(torchvision.transforms.v2 draws one set per call, so a batch would be flipped all or none).
Inputs are float images in [0, 1], shape (B, C, H, W); normalization comes after augmentation.
"""

from __future__ import annotations

import kornia.augmentation as K
from kornia.augmentation.auto import RandAugment, TrivialAugment
from torch import nn

from imgcls.errors import ConfigError

AUGMENTATIONS = {
    "none": "no augmentation",
    "flip": "random horizontal flip",
    "flip_translate": "horizontal flip + random translation up to max_translate_px pixels (EuroSAT study: 30 px at 224)",
    "shift_flip": "width/height shift up to 10% + horizontal flip (MNIST / CIFAR-10 study)",
    "intel_study": "rotation up to 90 deg, shift 20%, shear, zoom 0.8-1.2, horizontal flip (Intel study)",
    "trivialaugment": "TrivialAugment + horizontal flip (a strong modern default)",
    "randaugment": "RandAugment (2 ops) + horizontal flip",
}

# Colour operations of the auto-augment policies assume RGB (or grayscale) images.
_COLOUR_POLICIES = {"trivialaugment", "randaugment"}


def _translate(size: tuple[int, int], max_px: int, fill: str) -> nn.Module:
    """A random shift of up to ``max_px`` pixels each way, as a crop of the padded image.

    The same whole-pixel translation as an affine warp, at about twice the speed on CPUs.
    ``fill`` is ``constant`` (zeros) or ``replicate`` (edge pixels, Keras' ``nearest``).
    """
    return K.RandomCrop(size, padding=max_px, padding_mode=fill)


def build_augmentation(
    name: str, image_size: int | tuple[int, int], in_chans: int, max_translate_px: int = 30
) -> nn.Module:
    """Return the batch augmentation module of preset ``name``.

    Args:
        name: one of ``AUGMENTATIONS``.
        image_size: (height, width) of the images the preset sees, or the side of square ones.
        in_chans: channel count; colour policies need 1 or 3.
        max_translate_px: largest shift of ``flip_translate``, in pixels at ``image_size``.
    """
    if name not in AUGMENTATIONS:
        raise ConfigError(
            f"unknown augmentation preset {name!r}; choose one of: {', '.join(AUGMENTATIONS)} (set data.augment)"
        )
    if name in _COLOUR_POLICIES and in_chans not in (1, 3):
        raise ConfigError(
            f"augmentation {name!r} uses colour operations and needs 1 or 3 channels, the data has {in_chans}; "
            "use 'flip', 'flip_translate' or 'shift_flip'"
        )
    if name == "none":
        return nn.Identity()
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    flip = K.RandomHorizontalFlip()
    if name == "flip":
        return K.AugmentationSequential(flip)
    if name == "flip_translate":
        return K.AugmentationSequential(flip, _translate(size, max_translate_px, "constant"))
    if name == "shift_flip":
        return K.AugmentationSequential(_translate(size, round(0.1 * min(size)), "replicate"), flip)
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
