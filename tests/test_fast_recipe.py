"""The CPU time-to-accuracy recipe's pieces: imgcls/airbench, its whitening init, filter norms, Muon,
the flip-and-translate test-time views, MixUp and CutMix, and the config that joins them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from imgcls import ImageClassifier
from imgcls.commands import main
from imgcls.data import CIFAR10DataModule
from imgcls.data.transforms import BatchTransform, RandomShiftFlip, alternating_flips
from imgcls.errors import ConfigError
from imgcls.models import create_backbone
from imgcls.models.backbones import check_backbone_name
from imgcls.models.classifier import tta_probabilities, tta_views, tta_weights
from imgcls.models.networks import AirbenchNet
from tests.conftest import REPO


def test_airbench_is_a_backbone_by_name_with_pooled_features_at_any_size() -> None:
    check_backbone_name("imgcls/airbench")
    net, width = create_backbone("imgcls/airbench", in_chans=3)
    assert width == 256
    for side in (32, 64):
        assert net(torch.randn(2, 3, side, side)).shape == (2, 256)
    narrow, width = create_backbone("imgcls/airbench", in_chans=1, widths=(8, 16, 32))
    assert width == 32 and narrow(torch.randn(2, 1, 28, 28)).shape == (2, 32)
    assert not net.whiten.weight.requires_grad  # set from data, never trained
    assert not any(m.weight.requires_grad for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_unknown_own_network_and_weights_that_do_not_exist_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="imgcls/airbench"):
        check_backbone_name("imgcls/airbnch")
    with pytest.raises(ConfigError, match=r"no published weights.*--model\.pretrained PATH"):
        create_backbone("imgcls/airbench", pretrained=True)
    with pytest.raises(ConfigError, match="backbone_kwargs do not fit imgcls/airbench"):
        create_backbone("imgcls/airbench", depth=3)


@pytest.mark.parametrize("stride", [1, 2])
def test_whitening_init_decorrelates_the_patches_of_the_images(stride: int) -> None:
    torch.manual_seed(0)
    # correlated channels and neighbouring pixels: a smoothed random field seen through a colour mix
    base = torch.nn.functional.avg_pool2d(torch.randn(64, 3, 18, 18), 3, stride=1)
    images = torch.einsum(
        "oc,bchw->bohw", torch.tensor([[1.0, 0.5, 0.2], [0.4, 1.0, 0.3], [0.1, 0.6, 1.0]]), base
    )
    net, _ = create_backbone("imgcls/airbench", whiten_stride=stride)
    for eps in (0.0, 5e-4):
        net.init_from_images(images, eps=eps)
        with torch.no_grad():
            out = torch.nn.functional.conv2d(images, net.whiten.weight, stride=stride)  # without the bias
        half = out[:, :12].permute(1, 0, 2, 3).reshape(12, -1)
        covariance = half @ half.T / half.shape[1]
        off_diagonal = covariance - torch.diag(covariance.diagonal())
        assert off_diagonal.abs().max() < 1e-4  # decorrelated
        # unit variance; the regulariser eps only damps the directions of smallest variance
        assert torch.allclose(covariance.diagonal(), torch.ones(12), atol=1e-3 if eps == 0 else 0.2)
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12])


def test_whiten_stride_two_tiles_the_image_and_halves_every_later_side() -> None:
    net, width = create_backbone("imgcls/airbench", whiten_stride=2)
    images = torch.randn(2, 3, 64, 64)
    assert net.whiten(images).shape[-2:] == (32, 32)  # 2x2 tiles: every pixel seen once
    assert net(images).shape == (2, width)
    with pytest.raises(ConfigError, match="whiten_stride must be >= 1, got 0"):
        create_backbone("imgcls/airbench", whiten_stride=0)


def test_flip_translate_views_and_their_weights() -> None:
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    views = tta_views(images, "flip_translate")
    weights = tta_weights("flip_translate")
    assert len(views) == len(weights) == 6 and sum(weights) == pytest.approx(1.0)
    assert torch.equal(views[0], images) and torch.equal(views[1], images.flip(-1))
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
    assert torch.equal(views[2], padded[..., :4, :4])  # shifted down-right: the content moves by one
    assert torch.equal(views[4], padded[..., 2:, 2:])
    assert torch.equal(views[5], views[4].flip(-1))

    def classify(batch: torch.Tensor) -> torch.Tensor:
        return batch.flatten(1)[:, :3]

    expected = sum(w * classify(v).softmax(dim=1) for w, v in zip(weights, views, strict=True))
    assert torch.allclose(tta_probabilities(classify, images, "flip_translate"), expected)
    assert torch.allclose(tta_probabilities(classify, images, "none"), classify(images).softmax(dim=1))


@pytest.mark.parametrize(
    ("mixup", "cutmix", "kind"), [(0.8, 0.0, "MixUp"), (0.0, 1.0, "CutMix"), (0.8, 1.0, "RandomChoice")]
)
def test_mixup_and_cutmix_train_on_soft_labels(mixup: float, cutmix: float, kind: str) -> None:
    torch.manual_seed(0)
    model = ImageClassifier("test_resnet", num_classes=4, mixup_alpha=mixup, cutmix_alpha=cutmix)
    assert type(model.batch_mix).__name__ == kind
    images, labels = torch.randn(8, 3, 16, 16), torch.tensor([0, 1, 2, 3] * 2)
    mixed, targets = model.batch_mix(images, labels)
    assert targets.shape == (8, 4) and torch.allclose(targets.sum(dim=1), torch.ones(8))
    assert not torch.equal(mixed, images)
    out = model.training_step({"image": images, "label": labels, "index": torch.arange(8)}, 0)
    assert out["loss"].isfinite() and out["loss"].requires_grad
    assert ImageClassifier("test_resnet", num_classes=4).batch_mix is None


def test_bad_recipe_settings_name_the_option() -> None:
    with pytest.raises(ConfigError, match=r"model\.mixup_alpha must be 0"):
        ImageClassifier("test_resnet", mixup_alpha=-1)
    with pytest.raises(ConfigError, match=r"model\.cutmix_alpha must be 0"):
        ImageClassifier("test_resnet", cutmix_alpha=-0.5)
    with pytest.raises(
        ConfigError, match=r"test_resnet has no data-dependent initialisation.*data_init to 0"
    ):
        ImageClassifier("test_resnet", data_init=100)
    with pytest.raises(ConfigError, match="flip_translate"):
        ImageClassifier("test_resnet", test_time_augmentation="translate")


def test_compiled_airbench_in_bf16_has_the_gradients_of_float32() -> None:
    """model.compile with bf16-mixed on a CPU: the global max-pool's gradient came out NaN (amax)."""
    torch.manual_seed(0)
    images = torch.randn(16, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 4, (16,))
    kwargs = {"backbone_kwargs": {"widths": (8, 16, 16)}, "channels_last": True}
    reference = ImageClassifier("imgcls/airbench", num_classes=4, **kwargs)
    reference.backbone.init_from_images(images)
    compiled = ImageClassifier("imgcls/airbench", num_classes=4, compile=True, **kwargs)
    compiled.load_state_dict(reference.state_dict())
    for model, bf16 in ((reference, False), (compiled, True)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            torch.nn.functional.cross_entropy(model(images).float(), labels).backward()
    for name, p in compiled.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    # inductor keeps float32 between fused ops: its bf16 gradient is float32's to within rounding
    # (measured 0.9998, where eager bf16 is at 0.962)
    flat = [
        torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
        for m in (reference, compiled)
    ]
    assert torch.cosine_similarity(*flat, dim=0) > 0.99


def test_filter_norm_rescales_trainable_convolutions_before_each_step() -> None:
    model = ImageClassifier("imgcls/airbench", num_classes=4, filter_norm=True)
    convs = [m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            conv.weight.mul_(3.0)
    before = model.backbone.whiten.weight.clone()
    model.on_before_optimizer_step(torch.optim.SGD(model.parameters(), lr=0.1))
    for conv in convs[1:]:
        assert conv.weight.norm().item() == pytest.approx(conv.weight.shape[0] ** 0.5, rel=1e-5)
    assert torch.equal(model.backbone.whiten.weight, before)  # frozen: left alone


def test_the_airbench_config_fits_with_data_init_and_tests_with_six_views(
    fixture_roots: dict[str, Path], tmp_path: Path
) -> None:
    common = [
        "--config",
        str(REPO / "configs" / "cifar10_airbench.yaml"),
        f"--runs_dir={tmp_path}",
        f"--data.init_args.root={fixture_roots['cifar10']}",
        "--data.init_args.batch_size=16",
        "--trainer.precision=32-true",
        "--trainer.accelerator=cpu",
    ]
    fit = ["--model.data_init=40", "--data.init_args.alternate_flips=true", "--trainer.max_epochs=2"]
    main(["fit", *common, *fit, "--trainer.limit_train_batches=3"])
    run = tmp_path / "cifar10_airbench" / "version_0"
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    whiten = state["backbone.whiten.weight"]
    assert torch.equal(whiten[12:], -whiten[:12])  # set from the images, not left at random
    optimizer = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert optimizer["optimizer_states"][0]["param_groups"][0]["lr"] < 0.24  # the linear decay ran
    main(["test", *common, "--ckpt_path=best", "--model.test_time_augmentation=flip_translate"])
    metrics = json.loads((run / "test-tta-flip_translate" / "metrics.json").read_text())
    assert 0.0 <= metrics["test_acc"] <= 1.0


def test_data_init_whitens_training_images_normalised_once_and_not_augmented(
    fixture_roots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the images must be moved to the device as they are: the strategy's batch_to_device also runs the
    # datamodule's on_after_batch_transfer, which (at fit start) augments and normalises them once already
    seen: list[torch.Tensor] = []
    original = AirbenchNet.init_from_images

    def record(self: AirbenchNet, images: torch.Tensor, eps: float = 5e-4) -> None:
        seen.append(images.detach().clone())
        original(self, images, eps)

    monkeypatch.setattr(AirbenchNet, "init_from_images", record)
    root = fixture_roots["cifar10"]
    main(
        [
            "fit",
            "--config",
            str(REPO / "configs" / "cifar10_airbench.yaml"),
            f"--runs_dir={tmp_path}",
            f"--data.init_args.root={root}",
            f"--data.init_args.cache_dir={tmp_path / 'cache'}",
            "--data.init_args.batch_size=16",
            "--trainer.precision=32-true",
            "--trainer.accelerator=cpu",
            "--model.data_init=40",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=1",
            "--trainer.limit_val_batches=1",
        ]
    )
    (images,) = seen
    assert len(images) == 40
    datamodule = CIFAR10DataModule(root=str(root), cache="never", val_fraction=0.02, seed=0)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in datamodule.normalization)
    pixels = (images * std + mean) * 255
    assert torch.allclose(pixels, pixels.round(), atol=1e-3)  # uint8 pixels, normalised exactly once
    datamodule.setup("fit")
    train = {image.numpy().tobytes() for batch in datamodule.train_dataloader() for image in batch["image"]}
    unaugmented = [pixel.round().to(torch.uint8).numpy().tobytes() in train for pixel in pixels]
    assert all(unaugmented)  # neither shifted nor mirrored: the training images as validation sees them


def test_alternating_flips_mirror_each_image_once_every_two_epochs() -> None:
    indices = torch.arange(10_000)
    even, odd = alternating_flips(indices, 0), alternating_flips(indices, 1)
    assert torch.equal(even, ~odd)  # each image mirrored in exactly one epoch of each pair
    assert torch.equal(even, alternating_flips(indices, 2))  # and the same half again two epochs on
    assert 0.48 < even.float().mean().item() < 0.52  # half the dataset each epoch

    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    batch_indices = torch.tensor([3, 17, 4, 250, 9, 1000])
    flip = RandomShiftFlip(alternating=True)
    for epoch in (0, 1):
        out = flip(images, indices=batch_indices, epoch=epoch)
        mirrored = alternating_flips(batch_indices, epoch)
        for image, result, chosen in zip(images, out, mirrored, strict=True):
            assert torch.equal(result, image.flip(-1) if chosen else image)


def test_alternating_flips_reach_the_preset_through_the_batch_transform() -> None:
    transform = BatchTransform("flip", [0.0] * 3, [1.0] * 3, in_chans=3, alternate_flips=True)
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    indices = torch.tensor([0, 1, 2, 3])
    first = transform(images, train=True, indices=indices, epoch=0)
    second = transform(images, train=True, indices=indices, epoch=1)
    assert torch.equal(first, second.flip(-1))  # the images not mirrored in epoch 0 are in epoch 1
    with pytest.raises(ConfigError, match=r"alternate_flips.*'shift_flip'"):
        BatchTransform("shift_flip", [0.0] * 3, [1.0] * 3, in_chans=3, alternate_flips=True)
