"""ImagesPerSecond: images per second and epoch seconds for train, val and test, every epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch import Callback, Trainer

from imgcls import EuroSATDataModule, ImageClassifier
from imgcls.callbacks import ImagesPerSecond
from imgcls.commands import main
from tests.conftest import REPO


class RecordMetrics(ImagesPerSecond):
    """Keeps what was logged after each epoch, to count epochs."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self.history.append({k: float(v) for k, v in trainer.callback_metrics.items()})


@pytest.fixture
def parts(eurosat_root: Path, tmp_path: Path) -> tuple[EuroSATDataModule, ImageClassifier]:
    datamodule = EuroSATDataModule(
        root=str(eurosat_root), image_size=32, batch_size=8, num_workers=0, cache_dir=str(tmp_path / "cache")
    )
    model = ImageClassifier(backbone="test_resnet", num_classes=10)
    return datamodule, model


def make_trainer(tmp_path: Path, callback: Callback | None, epochs: int = 2) -> Trainer:
    return Trainer(
        default_root_dir=tmp_path,
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback] if callback is not None else [],
    )


def test_logs_train_and_val_figures_every_epoch(parts, tmp_path: Path) -> None:
    datamodule, model = parts
    monitor = RecordMetrics()
    make_trainer(tmp_path, monitor).fit(model, datamodule=datamodule)
    assert len(monitor.history) == 2
    n_train, n_val = len(datamodule.datasets["train"]), len(datamodule.datasets["val"])
    for epoch in monitor.history:
        for stage in ("train", "val"):
            assert epoch[f"{stage}_images_per_sec"] > 0
            assert epoch[f"{stage}_epoch_sec"] > 0
        # images / seconds: the logged pair is consistent with the split sizes
        assert epoch["train_images_per_sec"] * epoch["train_epoch_sec"] == pytest.approx(n_train, rel=1e-3)
        assert epoch["val_images_per_sec"] * epoch["val_epoch_sec"] == pytest.approx(n_val, rel=1e-3)


def test_logs_test_figures(parts, tmp_path: Path) -> None:
    datamodule, model = parts
    trainer = make_trainer(tmp_path, ImagesPerSecond())
    metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    assert metrics["test_images_per_sec"] > 0
    assert metrics["test_images_per_sec"] * metrics["test_epoch_sec"] == pytest.approx(
        len(datamodule.datasets["test"]), rel=1e-3
    )


def test_without_the_callback_nothing_is_logged(parts, tmp_path: Path) -> None:
    datamodule, model = parts
    trainer = make_trainer(tmp_path, None, epochs=1)
    trainer.fit(model, datamodule=datamodule)
    assert not any("images_per_sec" in key for key in trainer.callback_metrics)


def test_cli_registers_the_monitor(eurosat_root: Path, tmp_path: Path) -> None:
    main(
        [
            "fit",
            "--config",
            str(REPO / "configs" / "eurosat_resnet18_fast.yaml"),
            f"--runs_dir={tmp_path}",
            f"--data.init_args.root={eurosat_root}",
            f"--data.init_args.cache_dir={tmp_path / 'cache'}",
            "--data.init_args.num_workers=0",
            "--data.init_args.batch_size=8",
            "--data.init_args.image_size=32",
            "--model.backbone=test_resnet",
            "--model.compile=false",
            "--trainer.accelerator=cpu",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
        ]
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (tmp_path / "eurosat_resnet18_fast" / "version_0").glob("events.out.tfevents*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"train_images_per_sec", "train_epoch_sec", "val_images_per_sec", "val_epoch_sec"} <= tags
