"""TrainingHealth: the gradient norm and the share of dead features, logged per training step."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from imgcls import EuroSATDataModule, ImageClassifier
from imgcls.callbacks import TrainingHealth
from tests.test_throughput import make_trainer


class RecordNorms(TrainingHealth):
    """Also keeps the norm of all gradients, computed here by hand, at every optimizer step."""

    def __init__(self) -> None:
        super().__init__()
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        super().on_before_optimizer_step(trainer, pl_module, optimizer)
        squares = sum(
            float(p.grad.double().pow(2).sum()) for p in pl_module.parameters() if p.grad is not None
        )
        self.norms.append(math.sqrt(squares))


@pytest.fixture
def datamodule(eurosat_root: Path, tmp_path: Path) -> EuroSATDataModule:
    return EuroSATDataModule(
        root=str(eurosat_root), image_size=32, batch_size=8, num_workers=0, cache_dir=str(tmp_path / "cache")
    )


def fit(
    model: ImageClassifier, datamodule: EuroSATDataModule, tmp_path: Path, callback: TrainingHealth
) -> dict:
    trainer = make_trainer(tmp_path, callback, epochs=1)
    trainer.fit(model, datamodule=datamodule)
    return {key: float(value) for key, value in trainer.callback_metrics.items()}


def test_logs_the_norm_of_all_gradients_and_few_dead_features(datamodule, tmp_path: Path) -> None:
    health = RecordNorms()
    metrics = fit(ImageClassifier(backbone="test_resnet", num_classes=10), datamodule, tmp_path, health)
    assert len(health.norms) > 1
    # the last logged step's norm is the hand-computed norm of that step's gradients
    assert metrics["train_grad_norm"] == pytest.approx(health.norms[-1], rel=1e-4)
    assert 0.0 <= metrics["train_dead_features"] < 0.5


def test_features_killed_by_a_relu_count_as_dead(datamodule, tmp_path: Path) -> None:
    model = ImageClassifier(backbone="test_resnet", num_classes=10)
    width = model.head[-1].in_features
    killer = nn.Linear(width, width)
    with torch.no_grad():
        killer.bias.fill_(-1.0e6)  # every pre-activation far below zero: the ReLU outputs zeros
    model.backbone = nn.Sequential(model.backbone, killer, nn.ReLU())
    metrics = fit(model, datamodule, tmp_path, TrainingHealth())
    assert metrics["train_dead_features"] == 1.0
