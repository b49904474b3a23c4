"""Batch augmentation: RandomShiftFlip gives exactly the shifted and mirrored images, per sample."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from imgcls.data.transforms import BatchTransform, RandomShiftFlip, build_augmentation
from imgcls.errors import ConfigError


def candidates(image: torch.Tensor, max_px: int, fill: str) -> list[tuple[int, int, bool, torch.Tensor]]:
    """Every image a shift of up to ``max_px`` plus an optional mirror can make, built one by one."""
    h, w = image.shape[-2:]
    padded = F.pad(image[None].float(), (max_px,) * 4, mode=fill)[0].to(image.dtype)
    out = []
    for dy in range(-max_px, max_px + 1):
        for dx in range(-max_px, max_px + 1):
            crop = padded[:, max_px + dy : max_px + dy + h, max_px + dx : max_px + dx + w]
            out += [(dy, dx, False, crop), (dy, dx, True, crop.flip(-1))]
    return out


def match(
    out: torch.Tensor, options: list[tuple[int, int, bool, torch.Tensor]]
) -> list[tuple[int, int, bool]]:
    return [(dy, dx, flipped) for dy, dx, flipped, image in options if torch.equal(out, image)]


@pytest.mark.parametrize("fill", ["constant", "replicate"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_each_output_is_a_shifted_or_mirrored_copy(fill: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    max_px = 2
    # distinct values, so that only one shift and mirror can explain an output
    images = (torch.randperm(256)[: 2 * 3 * 6 * 7].view(2, 3, 6, 7)).to(dtype)
    images = images.repeat(100, 1, 1, 1)
    out = RandomShiftFlip(max_px, fill)(images)
    assert out.shape == images.shape and out.dtype == dtype
    seen = set()
    for source, result in zip(images, out, strict=True):
        found = match(result, candidates(source, max_px, fill))
        assert found, "an output is no shift or mirror of its input"
        seen.update(found)
    # 200 draws over 50 outcomes reach both directions, both mirrors and the unshifted image
    assert {dy for dy, _, _ in seen} == set(range(-max_px, max_px + 1))
    assert {dx for _, dx, _ in seen} == set(range(-max_px, max_px + 1))
    assert {flipped for _, _, flipped in seen} == {False, True}


def test_flip_only_keeps_or_mirrors_each_image() -> None:
    torch.manual_seed(1)
    image = torch.arange(3 * 4 * 5, dtype=torch.uint8).view(1, 3, 4, 5).repeat(64, 1, 1, 1)
    out = build_augmentation("flip", 4, 3)(image)
    mirrored = torch.tensor([torch.equal(o, image[0].flip(-1)) for o in out])
    kept = torch.tensor([torch.equal(o, image[0]) for o in out])
    assert bool((mirrored | kept).all()) and mirrored.any() and kept.any()


def test_uint8_and_float_batches_get_the_same_draws() -> None:
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    augment = RandomShiftFlip(3, "replicate")
    torch.manual_seed(7)
    from_bytes = augment(images).float()
    torch.manual_seed(7)
    from_floats = augment(images.float())
    assert torch.equal(from_bytes, from_floats)


def test_presets_and_bad_settings() -> None:
    assert build_augmentation("flip_translate", 64, 3, max_translate_px=6).max_px == 6
    shift_flip = build_augmentation("shift_flip", (30, 40), 1)
    assert (shift_flip.max_px, shift_flip.fill) == (3, "replicate")
    with pytest.raises(ConfigError, match="fill"):
        RandomShiftFlip(2, "reflect")
    with pytest.raises(ConfigError, match="0 or more"):
        RandomShiftFlip(-1)


def test_overhead_preset_reaches_all_eight_orientations() -> None:
    torch.manual_seed(3)
    image = torch.randperm(3 * 5 * 5).view(1, 3, 5, 5).to(torch.uint8)
    orientations = []
    for turns in range(4):
        turned = image[0].rot90(turns, (-2, -1))
        orientations += [turned, turned.flip(-1)]
    out = build_augmentation("overhead", 5, 3, max_translate_px=0)(image.repeat(200, 1, 1, 1))
    hits = [sum(torch.equal(o, orientation) for o in out) for orientation in orientations]
    assert sum(hits) == 200, "an output is no flip or quarter turn of the input"
    assert min(hits) >= 10, f"orientations far from equally likely: {hits}"


def test_batch_transform_converts_augments_and_normalizes() -> None:
    mean, std = [0.2, 0.4, 0.6], [0.5, 0.25, 0.125]
    transform = BatchTransform("flip", mean, std, in_chans=3)
    images = torch.randint(0, 256, (32, 3, 6, 6), dtype=torch.uint8)
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(transform(images, train=False), expected)
    assert transform.augmentation is None  # built at the first training batch, which gives the image size
    torch.manual_seed(0)
    out = transform(images, train=True)
    assert isinstance(transform.augmentation, RandomShiftFlip) and "augmentation" in dict(
        transform.named_children()
    )
    kept = torch.tensor([torch.allclose(o, e) for o, e in zip(out, expected, strict=True)])
    mirrored = torch.tensor([torch.allclose(o, e.flip(-1)) for o, e in zip(out, expected, strict=True)])
    assert bool((kept | mirrored).all()) and kept.any() and mirrored.any()
    # a shift or flip preset draws the same on the uint8 batch as on its float copy
    torch.manual_seed(0)
    torch.testing.assert_close(transform(images.float() / 255, train=True), out)


def test_batch_transform_leaves_a_float_batch_of_the_caller_alone() -> None:
    transform = BatchTransform("none", [0.5], [0.5], in_chans=1)
    images = torch.rand(4, 1, 5, 5)
    before = images.clone()
    out = transform(images, train=True)
    assert torch.equal(images, before)
    torch.testing.assert_close(out, (before - 0.5) / 0.5)
    out64 = transform(images.double(), train=False)  # new tensors for a new dtype or device
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64, (before.double() - 0.5) / 0.5)


def test_batch_transform_rejects_an_unknown_preset() -> None:
    with pytest.raises(ConfigError, match=r"data\.augment"):
        BatchTransform("flip_upside", [0.5], [0.5], in_chans=1)
