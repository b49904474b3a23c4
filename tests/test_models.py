"""create_backbone, heads, freezing, parameter groups, in_chans adaptation and local weight files."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from jsonargparse import ArgumentParser
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LRSchedulerCallable
from torch import nn
from torch.optim import lr_scheduler

from imgcls import ImageClassifier
from imgcls.errors import ConfigError
from imgcls.models import create_backbone, load_backbone_weights
from imgcls.models.classifier import tta_views


def bare_trainer(root: Path, max_epochs: int) -> Trainer:
    """A Trainer that trains only: no validation, logger, checkpoints, progress bar or summary."""
    return Trainer(
        max_epochs=max_epochs,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "features"),
    [
        ("test_resnet", {}, None),
        ("resnet18", {}, 512),
        ("torchvision/resnet18", {}, 512),
        ("torchvision/mobilenet_v2", {"width_mult": 0.5}, 1280),
        ("torchvision/shufflenet_v2_x0_5", {}, 1024),
        ("torchvision/googlenet", {}, 1024),
    ],
)
def test_backbone_reports_its_feature_width(name: str, kwargs: dict, features: int | None) -> None:
    backbone, num_features = create_backbone(name, **kwargs)
    if features is not None:
        assert num_features == features
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, num_features)


def test_head_replaced_for_torchvision_and_timm() -> None:
    for name in ("torchvision/resnet18", "resnet18"):
        model = ImageClassifier(name, num_classes=7)
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
        assert not any(isinstance(m, nn.Linear) and m.out_features == 1000 for m in model.modules())


def test_mlp_head() -> None:
    model = ImageClassifier("test_resnet", num_classes=6, head_hidden=[32, 16], head_dropout=0.5)
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (model.backbone.num_features, 32),
        (32, 16),
        (16, 6),
    ]
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in model.head)


def test_unknown_backbone_suggests_names() -> None:
    with pytest.raises(ConfigError, match="resnet50"):
        create_backbone("resnet5O")
    with pytest.raises(ConfigError, match="torchvision/resnet18"):
        create_backbone("torchvision/resnet81")


def test_freeze_backbone_trains_head_only_with_frozen_batchnorm() -> None:
    model = ImageClassifier("resnet18", num_classes=3, freeze_backbone=True, optimizer=torch.optim.SGD)
    model.train()
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert not model.backbone.training and model.head.training
    running_mean = model.backbone.bn1.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    torch.testing.assert_close(model.backbone.bn1.running_mean, running_mean)
    optimizer = model.configure_optimizers()
    assert [g["name"] for g in optimizer.param_groups] == ["head"]


def test_head_lr_multiplier_scales_the_head_group() -> None:
    model = ImageClassifier(
        "test_resnet",
        num_classes=3,
        head_lr_multiplier=10,
        optimizer=lambda params: torch.optim.SGD(params, lr=1e-4, momentum=0.9),
    )
    optimizer = model.configure_optimizers()
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs == pytest.approx({"backbone": 1e-4, "head": 1e-3})
    assert all(g["momentum"] == 0.9 for g in optimizer.param_groups)


def scheduler_from_yaml(class_path: str, **init_args: object) -> LRSchedulerCallable:
    """A scheduler factory made the way LightningCLI makes it from ``class_path``/``init_args``."""
    parser = ArgumentParser()
    parser.add_argument("--lr_scheduler", type=LRSchedulerCallable)
    config = parser.parse_object({"lr_scheduler": {"class_path": class_path, "init_args": init_args}})
    return parser.instantiate(config).lr_scheduler


def head_and_backbone_lrs(factory: Callable, steps: int = 8) -> list[tuple[float, float]]:
    """The head's and the backbone's learning rate before each of ``steps`` scheduler steps."""
    model = ImageClassifier(
        "test_resnet",
        num_classes=3,
        head_lr_multiplier=10,
        optimizer=functools.partial(torch.optim.SGD, lr=0.01, momentum=0.9),
        lr_scheduler=factory,
    )
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(steps):
        groups = {group["name"]: group["lr"] for group in optimizer.param_groups}
        lrs.append((groups["head"], groups["backbone"]))
        optimizer.step()
        # a plateau: the monitored loss never improves, so the rate drops to its floor
        scheduler.step(1.0) if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau) else scheduler.step()
    return lrs


@pytest.mark.parametrize(
    "factory",
    [
        functools.partial(lr_scheduler.OneCycleLR, max_lr=0.1, total_steps=10),
        scheduler_from_yaml("torch.optim.lr_scheduler.OneCycleLR", max_lr=0.1, total_steps=10),
        functools.partial(lr_scheduler.CyclicLR, base_lr=0.001, max_lr=0.1, step_size_up=3),
        functools.partial(lr_scheduler.CosineAnnealingLR, T_max=10),
        functools.partial(lr_scheduler.StepLR, step_size=2, gamma=0.5),
        scheduler_from_yaml(
            "torch.optim.lr_scheduler.ReduceLROnPlateau", mode="min", factor=0.1, patience=0, min_lr=1e-4
        ),
    ],
    ids=["one_cycle", "one_cycle_yaml", "cyclic", "cosine", "step", "plateau_min_lr_yaml"],
)
def test_head_lr_multiplier_holds_through_the_schedule(factory: Callable) -> None:
    lrs = head_and_backbone_lrs(factory)
    assert len({backbone for _, backbone in lrs}) > 1  # the schedule did change the rate
    for head, backbone in lrs:
        assert head == pytest.approx(10 * backbone)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        # a factory whose arguments imgcls cannot see: OneCycleLR sets every group from one max_lr
        (lambda opt: lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10), r"OneCycleLR set the head"),
        (functools.partial(lr_scheduler.CosineAnnealingLR, T_max=10, eta_min=1e-4), r"set eta_min to 0"),
        (lambda opt: lr_scheduler.ReduceLROnPlateau(opt, min_lr=1e-4), r"give min_lr as a list"),
    ],
    ids=["one_cycle_lambda", "cosine_eta_min", "plateau_min_lr_lambda"],
)
def test_scheduler_that_would_undo_head_lr_multiplier_is_refused(factory: Callable, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as error:
        head_and_backbone_lrs(factory)
    assert "model.head_lr_multiplier 10" in str(error.value)


def test_random_weights_are_logged_only_when_a_fit_trains_from_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="imgcls")
    message = "backbone test_resnet starts from random weights (model.pretrained is false)"
    batches = [{"image": torch.randn(4, 3, 16, 16), "label": torch.arange(4) % 3} for _ in range(2)]
    loader = torch.utils.data.DataLoader(batches, batch_size=None)

    def trainer(max_epochs: int) -> Trainer:
        return bare_trainer(tmp_path, max_epochs)

    model = ImageClassifier("test_resnet", num_classes=3)
    assert message not in caplog.text
    fresh = trainer(max_epochs=1)
    fresh.fit(model, train_dataloaders=loader)
    assert caplog.text.count(message) == 1
    fresh.save_checkpoint(tmp_path / "run.ckpt")
    caplog.clear()
    # resumed, tested: the checkpoint's weights are loaded, so nothing starts from random weights
    resumed = ImageClassifier("test_resnet", num_classes=3)
    trainer(max_epochs=2).fit(resumed, train_dataloaders=loader, ckpt_path=tmp_path / "run.ckpt")
    trainer(max_epochs=1).test(resumed, dataloaders=loader, ckpt_path=tmp_path / "run.ckpt", verbose=False)
    assert message not in caplog.text


def test_plateau_scheduler_follows_monitor() -> None:
    model = ImageClassifier(
        "test_resnet",
        num_classes=3,
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min"),
    )
    config = model.configure_optimizers()
    assert config["lr_scheduler"]["monitor"] == "val_loss"
    wrong = ImageClassifier(
        "test_resnet",
        num_classes=3,
        monitor="val_acc",
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min"),
    )
    with pytest.raises(ConfigError, match="mode"):
        wrong.configure_optimizers()


@pytest.mark.parametrize(("interval", "total"), [("step", 3 * 4), ("epoch", 3 + 1)])
def test_one_cycle_without_length_gets_the_runs_length(interval: str, total: int, tmp_path: Path) -> None:
    """As from YAML: a OneCycleLR partial with total_steps left null spans the whole run."""
    one_cycle = functools.partial(
        torch.optim.lr_scheduler.OneCycleLR, max_lr=0.1, total_steps=None, epochs=None, steps_per_epoch=None
    )
    model = ImageClassifier(
        "test_resnet",
        num_classes=3,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        lr_scheduler=one_cycle,
        scheduler_interval=interval,
    )
    images = torch.randn(16, 3, 16, 16)
    labels = torch.arange(16) % 3
    batches = [{"image": images[i : i + 4], "label": labels[i : i + 4]} for i in range(0, 16, 4)]
    trainer = bare_trainer(tmp_path, max_epochs=3)
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.total_steps == total
    # stepped through the whole schedule without OneCycleLR's "tried to step ... times" error
    assert scheduler.last_epoch == 3 * 4 if interval == "step" else scheduler.last_epoch == 3
    with pytest.raises(ConfigError, match="scheduler_interval"):
        ImageClassifier("test_resnet", num_classes=3, scheduler_interval="batch")


@pytest.mark.parametrize("name", ["resnet18", "torchvision/resnet18", "torchvision/mobilenet_v2"])
@pytest.mark.parametrize("in_chans", [1, 13])
def test_in_chans_adapts_first_layer(name: str, in_chans: int) -> None:
    model = ImageClassifier(name, num_classes=4, in_chans=in_chans)
    assert model(torch.randn(2, in_chans, 32, 32)).shape == (2, 4)


def test_local_torchvision_weights_load_and_adapt_channels(tmp_path: Path) -> None:
    source = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = ImageClassifier("torchvision/resnet18", num_classes=5, pretrained=str(path))
    torch.testing.assert_close(model.backbone.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    gray = ImageClassifier("torchvision/resnet18", num_classes=5, in_chans=1, pretrained=str(path))
    torch.testing.assert_close(gray.backbone.conv1.weight, source.conv1.weight.sum(dim=1, keepdim=True))


def test_local_timm_checkpoint_with_wrapper_keys(tmp_path: Path) -> None:
    source = timm.create_model("resnet18", num_classes=1000)
    path = tmp_path / "timm.pth.tar"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = ImageClassifier("resnet18", num_classes=2, pretrained=str(path))
    torch.testing.assert_close(model.backbone.conv1.weight, source.conv1.weight)


def test_local_safetensors_file(tmp_path: Path) -> None:
    import safetensors.torch

    source = timm.create_model("test_resnet", num_classes=1000)
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file(source.state_dict(), str(path))
    model = ImageClassifier("test_resnet", num_classes=4, pretrained=str(path))
    first = next(iter(model.backbone.state_dict()))
    torch.testing.assert_close(model.backbone.state_dict()[first], source.state_dict()[first])


def test_imgcls_checkpoint_as_pretrained_gets_a_new_head(tmp_path: Path) -> None:
    trained = ImageClassifier("test_resnet", num_classes=10)
    path = tmp_path / "run.ckpt"
    torch.save({"state_dict": trained.state_dict(), "hyper_parameters": {"num_classes": 10}}, path)
    model = ImageClassifier("test_resnet", num_classes=3, pretrained=str(path))
    first = next(iter(trained.backbone.state_dict()))
    torch.testing.assert_close(model.backbone.state_dict()[first], trained.backbone.state_dict()[first])
    assert model.head[-1].out_features == 3


def test_a_checkpoint_for_another_channel_count_is_refused_with_the_fix() -> None:
    trained = ImageClassifier("test_resnet", num_classes=3, in_chans=1)
    model = ImageClassifier("test_resnet", num_classes=3, in_chans=3)
    with pytest.raises(
        ConfigError, match=r"expects 1-channel images but the data has 3\..*--model\.pretrained"
    ):
        model.on_load_checkpoint({"state_dict": trained.state_dict()})
    model.on_load_checkpoint({"state_dict": model.state_dict()})  # a matching one loads


def test_weights_for_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    with pytest.raises(ConfigError, match="architecture"):
        load_backbone_weights(create_backbone("torchvision/resnet18")[0], path)


def test_missing_weights_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ImageClassifier("test_resnet", num_classes=3, pretrained="/no/such/weights.pth")


def test_pretrained_download_failure_says_how_to_pass_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(ConfigError, match=r"--model\.pretrained /path/to/weights"):
        create_backbone("torchvision/resnet18", pretrained=True)


def test_leaky_relu_activation_override() -> None:
    backbone, _ = create_backbone("torchvision/resnet34", activation="leaky_relu")
    kinds = {type(m) for m in backbone.modules()}
    assert nn.LeakyReLU in kinds and nn.ReLU not in kinds


@pytest.mark.parametrize(
    ("name", "last_stage"),
    [("resnet18", "layer4"), ("torchvision/resnet18", "layer4"), ("torchvision/shufflenet_v2_x0_5", "conv5")],
)
def test_dropping_the_stem_pool_doubles_the_feature_maps(name: str, last_stage: str) -> None:
    sides = {}
    for stem_pool in (True, False):
        backbone, _ = create_backbone(name, stem_pool=stem_pool)
        stage = backbone.get_submodule(last_stage)
        stage.register_forward_hook(
            lambda module, args, out, key=stem_pool: sides.__setitem__(key, out.shape[-1])
        )
        with torch.no_grad():
            backbone.eval()(torch.randn(1, 3, 64, 64))
    assert (sides[True], sides[False]) == (2, 4)


def test_classifier_without_stem_pool_reloads_as_saved(tmp_path: Path) -> None:
    model = ImageClassifier(backbone="resnet18", num_classes=3, stem_pool=False)
    assert isinstance(model.backbone.maxpool, nn.Identity)
    trainer = bare_trainer(tmp_path, max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    reloaded = ImageClassifier.load_from_checkpoint(tmp_path / "model.ckpt")
    assert isinstance(reloaded.backbone.maxpool, nn.Identity)


def test_stem_pool_on_a_backbone_without_one_names_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"vgg11 has none; leave model\.stem_pool at true"):
        create_backbone("torchvision/vgg11", stem_pool=False)


def test_dihedral_views_are_the_eight_flips_and_quarter_turns() -> None:
    images = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(2, 1, 3, 3)
    views = tta_views(images, "dihedral")
    assert len({tuple(v[0].flatten().tolist()) for v in views}) == 8
    assert torch.equal(views[0], images)
    # the group is closed: every flip and turn of a view is one of the views
    keys = {tuple(v.flatten().tolist()) for v in views}
    for view in views:
        assert tuple(view.flip(-2).flatten().tolist()) in keys
        assert tuple(view.transpose(-1, -2).flatten().tolist()) in keys
    plain, mirrored = tta_views(images, "hflip")
    assert torch.equal(plain, images) and torch.equal(mirrored, images.flip(-1))
    with pytest.raises(ConfigError, match="square images"):
        tta_views(torch.zeros(1, 3, 4, 6), "dihedral")
    with pytest.raises(ConfigError, match="hflip"):
        ImageClassifier("test_resnet", num_classes=4, test_time_augmentation="vflip")


def test_test_time_augmentation_averages_probabilities_over_views() -> None:
    model = ImageClassifier("test_resnet", num_classes=4, test_time_augmentation="dihedral").eval()
    images = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        logits = model.evaluate(images)
        expected = torch.stack([model(v).softmax(1) for v in tta_views(images, "dihedral")]).mean(0)
        torch.testing.assert_close(logits.softmax(1), expected)
        assert not torch.allclose(expected, model(images).softmax(1))
        model.test_time_augmentation = "none"
        torch.testing.assert_close(model.evaluate(images), model(images))
    assert "test_time_augmentation" not in model.hparams  # so a test command can set it for any checkpoint
