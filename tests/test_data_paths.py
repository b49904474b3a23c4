"""Sample names are absolute paths, so that a run folder's ``predictions.csv`` opens from any folder."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from imgcls import CIFAR10DataModule, EuroSATDataModule, ImageFolderDataModule


@pytest.mark.parametrize("cache", ["auto", "never"])
def test_a_relative_root_gives_absolute_sample_names(
    cache: str, eurosat_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(eurosat_root.parent)
    datamodule = EuroSATDataModule(
        root=eurosat_root.name, image_size=32, num_workers=0, cache=cache, cache_dir=str(tmp_path / "cache")
    )
    datamodule.setup()
    assert datamodule.root == eurosat_root.absolute()
    monkeypatch.chdir(tmp_path)  # a notebook elsewhere reads the names
    for split in ("train", "val", "test", "predict"):
        for index in datamodule.datasets[split].indices[:3]:
            name = Path(datamodule.sample_name(split, int(index)))
            assert name.is_absolute() and name.is_file(), name


def test_relative_test_and_predict_folders_give_absolute_names(
    fixture_roots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    intel = fixture_roots["intel"]
    monkeypatch.chdir(intel)
    datamodule = ImageFolderDataModule(
        "seg_train", test_root="seg_test", predict_root="./seg_pred", image_size=32, num_workers=0
    )
    assert (datamodule.test_root, datamodule.predict_root) == (intel / "seg_test", intel / "seg_pred")
    datamodule.setup("test")
    datamodule.setup("predict")
    monkeypatch.chdir(tmp_path)
    names = [datamodule.sample_name("test", 0), datamodule.sample_name("predict", 0)]
    assert all(Path(name).is_absolute() and Path(name).is_file() for name in names)


def test_relative_and_absolute_roots_share_one_cache(
    eurosat_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    kwargs = {"image_size": 32, "num_workers": 0, "cache_dir": str(tmp_path / "cache")}
    EuroSATDataModule(root=str(eurosat_root), **kwargs).setup()
    monkeypatch.chdir(eurosat_root.parent)
    with caplog.at_level(logging.INFO, logger="imgcls.data"):
        EuroSATDataModule(root=eurosat_root.name, **kwargs).setup()
    assert "decoding" not in caplog.text
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_array_datasets_name_samples_by_index(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    datamodule = CIFAR10DataModule(str(fixture_roots["cifar10"]), num_workers=0, cache_dir=str(tmp_path))
    datamodule.setup("test")
    assert [datamodule.sample_name("test", i) for i in range(3)] == ["0", "1", "2"]
