"""Every backbone the studies used takes one training step, and every study config resolves to the study's setup."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from imgcls.commands import main
from imgcls.models import ImageClassifier
from tests.conftest import REPO

CONFIGS = REPO / "configs"
MODELS = CONFIGS / "base" / "models"
OPTIMIZERS = CONFIGS / "base" / "optim"
MODEL_PIECES = sorted(p.stem for p in MODELS.glob("*.yaml"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny steps run far faster on one thread: two threads spin against each other on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build_model(piece: str, in_chans: int = 3) -> ImageClassifier:
    return ImageClassifier(
        **yaml.safe_load((MODELS / f"{piece}.yaml").read_text()), num_classes=3, in_chans=in_chans
    )


def train_one_step(model: ImageClassifier, in_chans: int = 3) -> None:
    """One SGD step on two 64 px images (the smallest size AlexNet and GoogLeNet accept)."""
    torch.manual_seed(0)
    images, labels = torch.randn(2, in_chans, 64, 64), torch.tensor([0, 2])
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    logits = model(images)
    assert logits.shape == (2, 3)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("piece", MODEL_PIECES)
def test_study_backbone_takes_a_training_step(piece: str) -> None:
    train_one_step(build_model(piece))


@pytest.mark.parametrize("piece", ["alexnet", "resnet34_leaky_relu"])
def test_grayscale_input_for_the_mnist_studies(piece: str) -> None:
    train_one_step(build_model(piece, in_chans=1), in_chans=1)


def test_googlenet_trains_without_its_auxiliary_heads() -> None:
    backbone = build_model("googlenet").backbone
    assert backbone.aux1 is None and backbone.aux2 is None
    backbone.train()
    assert isinstance(backbone(torch.randn(2, 3, 64, 64)), torch.Tensor)  # not GoogLeNetOutputs


def test_resnet34_leaky_relu_is_an_activation_override() -> None:
    backbone = build_model("resnet34_leaky_relu").backbone
    kinds = {type(m) for m in backbone.modules()}
    assert nn.LeakyReLU in kinds and nn.ReLU not in kinds
    plain = build_model("resnet34").backbone
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in backbone.named_parameters()]


def test_width_variants_differ() -> None:
    def first_conv(piece: str) -> nn.Conv2d:
        return next(m for m in build_model(piece).backbone.modules() if isinstance(m, nn.Conv2d))

    assert first_conv("mobilenet_v2_050").out_channels * 2 == first_conv("mobilenet_v2").out_channels
    stages = {
        p: build_model(p).backbone._stage_out_channels for p in ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0")
    }
    assert stages == {
        "shufflenet_v2_x0_5": [24, 48, 96, 192, 1024],
        "shufflenet_v2_x1_0": [24, 116, 232, 464, 1024],
    }


# --- study configs ------------------------------------------------------------------------------


def resolve(config: str, *extra: str) -> dict:
    """The fully resolved config of ``imgcls fit --config configs/<config> <extra>`` (nothing is run)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / config), *extra, "--print_config"])
    return yaml.safe_load(out.getvalue())


def model_arg(piece: str) -> list[str]:
    return ["--model", str(MODELS / f"{piece}.yaml")]


def optimizer_of(config: dict) -> tuple[str, dict]:
    optimizer = config["model"]["optimizer"]
    return optimizer["class_path"].rsplit(".", 1)[-1], optimizer["init_args"]


def plateau_on_val_loss(config: dict) -> bool:
    scheduler = config["model"]["lr_scheduler"] or {}
    return (
        scheduler.get("class_path", "").endswith("ReduceLROnPlateau")
        and config["model"]["monitor"] == "val_loss"
    )


@pytest.mark.parametrize("piece", ["googlenet", "resnet50", "shufflenet_v2_x1_0", "mobilenet_v2"])
def test_eurosat_transfer_study(piece: str) -> None:
    config = resolve("eurosat_transfer.yaml", *model_arg(piece))
    data = config["data"]["init_args"]
    assert config["model"]["backbone"] == yaml.safe_load((MODELS / f"{piece}.yaml").read_text())["backbone"]
    assert (data["image_size"], data["batch_size"], data["max_per_class"], data["val_fraction"]) == (
        224,
        10,
        200,
        0.3,
    )
    assert (data["augment"], data["max_translate_px"]) == ("flip_translate", 30)
    name, args = optimizer_of(config)
    assert (name, args["lr"], args["momentum"]) == ("SGD", 1e-4, 0.9)
    assert config["model"]["head_lr_multiplier"] == 10 and config["trainer"]["max_epochs"] == 3


OPTIMIZER_SETUPS = {
    "sgd": ("SGD", 1e-3, 0.0),
    "sgd_momentum": ("SGD", 1e-4, 0.9),
    "adam": ("Adam", 1e-3, None),
}


@pytest.mark.parametrize("optimizer", OPTIMIZER_SETUPS)
@pytest.mark.parametrize("piece", ["resnet18", "mobilenet_v2_050", "shufflenet_v2_x0_5"])
def test_cifar10_scratch_study(piece: str, optimizer: str) -> None:
    config = resolve(
        "cifar10_scratch.yaml", *model_arg(piece), "--model.optimizer", str(OPTIMIZERS / f"{optimizer}.yaml")
    )
    name, args = optimizer_of(config)
    assert (name, args["lr"], args.get("momentum")) == OPTIMIZER_SETUPS[optimizer]
    assert args["weight_decay"] == 1e-6 and plateau_on_val_loss(config)
    assert (
        config["trainer"]["max_epochs"] == 50 and config["data"]["class_path"] == "imgcls.CIFAR10DataModule"
    )
    assert config["model"]["pretrained"] is False


@pytest.mark.parametrize("piece", ["alexnet", "vgg16", "resnet34_leaky_relu"])
@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10"])
def test_cnn64_study(dataset: str, piece: str) -> None:
    config = resolve(f"cnn64_{dataset}.yaml", *model_arg(piece))
    data = config["data"]["init_args"]
    assert (data["image_size"], data["batch_size"], data["val_fraction"], data["augment"]) == (
        64,
        128,
        0.1,
        "shift_flip",
    )
    assert optimizer_of(config)[0] == "Adam" and plateau_on_val_loss(config)
    # Adam at 1e-3 kills most features of the two networks without batch-norm in their first steps
    assert optimizer_of(config)[1]["lr"] == (1e-3 if piece == "resnet34_leaky_relu" else 1e-4)
    assert config["trainer"]["max_epochs"] == 100 and config["early_stopping"]["patience"] > 0
    assert config["model"]["activation"] == ("leaky_relu" if piece == "resnet34_leaky_relu" else None)


@pytest.mark.parametrize("piece", ["resnet18", "resnet34"])
def test_miniimagenet_pretraining_study(piece: str) -> None:
    config = resolve("miniimagenet_pretrain.yaml", *model_arg(piece))
    assert config["model"]["backbone"] == f"torchvision/{piece}"
    assert (
        config["data"]["init_args"]["splits"] == ["train"]
        and config["data"]["init_args"]["test_fraction"] > 0
    )


def test_intel_study() -> None:
    config = resolve("intel_resnet50_mlp.yaml")
    data, model = config["data"]["init_args"], config["model"]
    assert (data["batch_size"], data["augment"], data["image_size"]) == (64, "intel_study", 150)
    assert data["test_root"].endswith("seg_test") and data["predict_root"].endswith("seg_pred")
    assert model["backbone"] == "torchvision/resnet50" and model["freeze_backbone"] and model["head_hidden"]
    name, args = optimizer_of(config)
    assert (name, args["lr"], args["momentum"], config["trainer"]["max_epochs"]) == ("SGD", 1e-3, 0.9, 8)


def test_every_model_and_optimizer_piece_is_used_by_a_study() -> None:
    text = "\n".join(p.read_text() for p in [*CONFIGS.glob("*.yaml"), Path(__file__)])
    for piece in [*MODELS.glob("*.yaml"), *OPTIMIZERS.glob("*.yaml")]:
        assert piece.stem in text, f"{piece} is not referenced by any config or study test"
