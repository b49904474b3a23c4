"""Training recipes: the weight average (EMA) with recomputed batch-norm statistics, progressive resizing."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import LightningModule
from torch import nn

from imgcls.callbacks import EMA, ProgressiveResizing
from imgcls.callbacks.averaging import ema_with_warmup
from imgcls.commands import main
from imgcls.data.transforms import BatchTransform, scaled_size
from imgcls.errors import ConfigError
from tests.test_cli import cli_args  # noqa: F401  (fixture)


def test_ema_decay_warms_up_then_holds() -> None:
    update = ema_with_warmup(0.9)
    averaged, current = [torch.zeros(3)], [torch.ones(3)]
    update(averaged, current, torch.tensor(1))  # decay min(0.9, 2/11)
    assert torch.allclose(averaged[0], torch.full((3,), 1 - 2 / 11))
    averaged = [torch.zeros(3)]
    update(averaged, current, torch.tensor(1000))  # warmed up: 0.9
    assert torch.allclose(averaged[0], torch.full((3,), 0.1))
    counts = [torch.tensor(5)]
    update(counts, [torch.tensor(9)], torch.tensor(3))
    assert counts[0].item() == 9  # integer buffers take the newest value


class BatchNormProbe(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.linear = nn.Linear(3, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(self.bn(images).mean(dim=(2, 3)))


def test_ema_recomputes_batch_norm_statistics_of_the_average_before_validation() -> None:
    module, ema = BatchNormProbe(), EMA(decay=0.5, bn_batches=2)
    trainer = SimpleNamespace(global_step=0, sanity_checking=False)
    ema.setup(trainer, module, "fit")
    batches = [torch.randn(4, 3, 5, 5) + 3, torch.randn(4, 3, 5, 5) - 1, torch.randn(4, 3, 5, 5) * 2]
    for step, images in enumerate(batches, start=1):
        with torch.no_grad():
            module.linear.weight.add_(1.0)  # a training step that moves the weights
        trainer.global_step = step
        ema.on_train_batch_end(trainer, module, None, {"image": images}, step - 1)
    trained_weight = module.linear.weight.detach().clone()
    ema.on_validation_epoch_start(trainer, module)
    # the model holds the average now, with statistics of the last two batches, not averaged ones
    assert not torch.equal(module.linear.weight, trained_weight)
    expected_mean = torch.cat(batches[-2:]).mean(dim=(0, 2, 3))
    assert torch.allclose(module.bn.running_mean, expected_mean, atol=1e-5)
    ema.on_validation_epoch_end(trainer, module)
    assert torch.equal(module.linear.weight, trained_weight)
    assert torch.allclose(ema._average_model.module.bn.running_mean, expected_mean, atol=1e-5)


def test_ema_off_does_nothing() -> None:
    module, ema = BatchNormProbe(), EMA()
    trainer = SimpleNamespace(global_step=1, sanity_checking=False)
    ema.setup(trainer, module, "fit")
    ema.on_train_batch_end(trainer, module, None, {"image": torch.randn(2, 3, 4, 4)}, 0)
    ema.on_validation_epoch_start(trainer, module)
    ema.on_train_end(trainer, module)
    checkpoint = {"state_dict": module.state_dict()}
    ema.on_save_checkpoint(trainer, module, checkpoint)
    assert set(checkpoint) == {"state_dict"}


@pytest.mark.parametrize("kwargs", [{"decay": 1.5}, {"decay": 0.9, "bn_batches": -1}])
def test_ema_rejects_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="ema"):
        EMA(**kwargs)


def test_progressive_resizing_schedule_and_sizes() -> None:
    schedule = ProgressiveResizing(start_scale=0.5, full_size_epoch=4)
    assert [schedule.scale(e) for e in range(6)] == [0.5, 0.625, 0.75, 0.875, 1.0, 1.0]
    assert [scaled_size((64, 64), s) for s in (0.5, 0.625, 0.75, 0.875, 1.0)] == [
        (32, 32),
        (40, 40),
        (48, 48),
        (56, 56),
        (64, 64),
    ]
    assert scaled_size((20, 20), 0.1) == (8, 8) and scaled_size((6, 6), 0.5) == (6, 6)
    assert ProgressiveResizing().scale(0) == 1.0  # off
    with pytest.raises(ConfigError, match="start_scale"):
        ProgressiveResizing(start_scale=0)


def test_batch_transform_scales_training_batches_only_when_asked() -> None:
    transform = BatchTransform("flip", [0.5] * 3, [0.25] * 3, in_chans=3)
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    assert transform(images, train=True, size=(8, 8)).shape == (4, 3, 8, 8)
    full = transform(images, train=False)
    assert full.shape == (4, 3, 16, 16)
    assert torch.allclose(full, (images.float() / 255 - 0.5) / 0.25)


def test_fit_with_ema_and_progressive_resizing(cli_args: list[str], tmp_path: Path) -> None:  # noqa: F811
    recipe = [
        "--ema.decay=0.9",
        "--ema.bn_batches=2",
        "--progressive_resizing.start_scale=0.5",
        "--progressive_resizing.full_size_epoch=2",
    ]
    main(["fit", *cli_args, *recipe, "--trainer.max_epochs=3"])
    run = tmp_path / "eurosat_sample" / "version_0"
    with (run / "metrics.csv").open() as f:
        sides = [float(r["train_image_side"]) for r in csv.DictReader(f) if r.get("train_image_side")]
    assert sides == [16.0, 24.0, 32.0]  # image_size 32: half, three quarters, full
    info = json.loads((run / "run_info.json").read_text())
    assert info["input_size"] == [3, 32, 32]  # GFLOPs at the size the model is tested at
    assert info["device"].endswith("cores)")  # what the timings were measured on
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert "current_model_state" in last  # the checkpoint's state_dict is the average
    averaged, trained = last["state_dict"], last["current_model_state"]
    assert any(not torch.equal(averaged[k], trained[k]) for k in averaged if averaged[k].is_floating_point())
    # a resumed fit goes on from the trained weights and the average; test scores the average
    main(["fit", *cli_args, *recipe, "--trainer.max_epochs=4", "--ckpt_path=last"])
    main(["test", *cli_args, *recipe, "--ckpt_path=best"])
    assert (run / "metrics.json").is_file()


def test_progressive_resizing_warns_when_no_epoch_trains_at_full_size(
    cli_args: list[str],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    main(["fit", *cli_args, "--progressive_resizing.start_scale=0.5", "--trainer.max_epochs=2"])
    assert "full_size_epoch is 10 but trainer.max_epochs is 2" in caplog.text
