"""The base datamodule through EuroSAT and ImageFolder: splits, subsampling, decoding, batches, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from imgcls import EuroSATDataModule, ImageFolderDataModule
from imgcls.errors import ConfigError, DataError


def batch_of(datamodule, split: str = "train", train: bool = False) -> dict:
    datamodule.setup()
    loader = getattr(datamodule, f"{split}_dataloader")()
    return datamodule.transform_batch(next(iter(loader)), train=train)


def test_eurosat_exposes_what_the_model_links(eurosat_root: Path) -> None:
    dm = EuroSATDataModule(root=str(eurosat_root))
    assert dm.num_classes == 10 and dm.in_chans == 3
    assert dm.class_names[0] == "AnnualCrop" and dm.class_names[-1] == "SeaLake"


def test_splits_are_disjoint_stratified_and_reproducible(eurosat_root: Path) -> None:
    def indices(seed: int) -> dict[str, list[int]]:
        dm = EuroSATDataModule(root=str(eurosat_root), val_fraction=0.25, test_fraction=0.25, seed=seed)
        dm.setup()
        return {split: list(dm.datasets[split].indices) for split in ("train", "val", "test")}

    first, again, other = indices(0), indices(0), indices(1)
    assert first == again and first != other
    assert not set(first["train"]) & set(first["val"]) and not set(first["train"]) & set(first["test"])
    assert sum(len(v) for v in first.values()) == 80
    dm = EuroSATDataModule(root=str(eurosat_root), val_fraction=0.25, test_fraction=0.25)
    for split, per_class in (("test", 2), ("val", 2), ("train", 4)):
        np.testing.assert_array_equal(np.bincount(dm.split_targets(split), minlength=10), [per_class] * 10)


def test_max_per_class_balances_trainval_and_test(eurosat_root: Path) -> None:
    dm = EuroSATDataModule(root=str(eurosat_root), max_per_class=3, val_fraction=0.34, test_fraction=0.5)
    dm.setup()
    trainval = np.concatenate([dm.split_targets("train"), dm.split_targets("val")])
    np.testing.assert_array_equal(np.bincount(trainval, minlength=10), [3] * 10)
    np.testing.assert_array_equal(np.bincount(dm.split_targets("test"), minlength=10), [3] * 10)


def test_batches_are_normalized_float_at_image_size(eurosat_root: Path) -> None:
    dm = EuroSATDataModule(root=str(eurosat_root), image_size=48, batch_size=8, num_workers=0)
    raw = next(iter((dm.setup(), dm.val_dataloader())[1]))
    assert raw["image"].dtype == torch.uint8 and raw["image"].shape == (8, 3, 48, 48)
    batch = dm.transform_batch(raw, train=False)
    assert batch["image"].dtype == torch.float32
    mean, std = dm.normalization
    expected = (raw["image"][:, 0].float() / 255 - mean[0]) / std[0]
    torch.testing.assert_close(batch["image"][:, 0], expected)
    assert batch["label"].shape == (8,)


def test_training_augmentation_differs_per_sample(eurosat_root: Path) -> None:
    dm = EuroSATDataModule(root=str(eurosat_root), batch_size=16, num_workers=0, augment="flip")
    dm.setup()
    same = next(iter(dm.val_dataloader()))
    image = same["image"][:1].expand(16, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    out = dm.transform_batch({**same, "image": image}, train=True)["image"]
    flipped = [not torch.equal(out[i], out[0]) for i in range(1, 16)]
    assert any(flipped) and not all(flipped), (
        "a flip preset must flip some samples of a batch, not all or none"
    )
    untouched = dm.transform_batch({**same, "image": image}, train=False)["image"]
    assert all(torch.equal(untouched[i], untouched[0]) for i in range(16))


def test_image_folder_loads_mixed_sizes_and_modes(folder_root: Path) -> None:
    dm = ImageFolderDataModule(
        root=str(folder_root), image_size=32, num_workers=0, batch_size=24, val_fraction=0
    )
    dm.setup()
    assert dm.class_names == ["cat", "dog", "fox"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[1:] == (3, 32, 32)
    gray = ImageFolderDataModule(root=str(folder_root), image_size=32, in_chans=1, num_workers=0)
    assert batch_of(gray)["image"].shape[1] == 1


def test_separate_test_folder_and_predict_folder(fixture_roots: dict[str, Path]) -> None:
    intel = fixture_roots["intel"]
    dm = ImageFolderDataModule(
        root=str(intel / "seg_train"),
        test_root=str(intel / "seg_test"),
        predict_root=str(intel / "seg_pred"),
        image_size=32,
        num_workers=0,
    )
    dm.setup()
    assert len(dm.datasets["test"]) == 18 and len(dm.datasets["train"]) + len(dm.datasets["val"]) == 36
    assert len(dm.datasets["predict"]) == 5
    predict = next(iter(dm.predict_dataloader()))
    assert predict["image"].shape[-1] == 32 and (predict["label"] == -1).all()


def test_missing_root_names_the_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere.*<Class>_<n>.jpg"):
        _ = EuroSATDataModule(root=str(tmp_path / "nowhere")).num_classes
    with pytest.raises(DataError, match="does not exist"):
        _ = ImageFolderDataModule(root=str(tmp_path / "nowhere")).num_classes


def test_empty_class_folder(tmp_path: Path, folder_root: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(folder_root, root)
    for file in (root / "dog").iterdir():
        file.unlink()
    dm = ImageFolderDataModule(root=str(root))
    with pytest.raises(DataError, match=r"dog holds no images"):
        dm.setup()


def test_corrupt_image_is_named(tmp_path: Path, eurosat_root: Path) -> None:
    root = tmp_path / "eurosat"
    shutil.copytree(eurosat_root, root)
    broken = root / "Forest" / "Forest_3.jpg"
    broken.write_bytes(broken.read_bytes()[:200])
    dm = EuroSATDataModule(root=str(root), num_workers=0, batch_size=100, val_fraction=0, test_fraction=0)
    with pytest.raises(DataError, match=r"Forest_3\.jpg"):  # when the cache is built, or when streamed
        dm.setup()
        next(iter(dm.train_dataloader()))


def test_bad_settings_are_rejected(eurosat_root: Path) -> None:
    with pytest.raises(ConfigError, match="augment"):
        EuroSATDataModule(root=str(eurosat_root), augment="flip_upside")
    with pytest.raises(ConfigError, match="val_fraction"):
        EuroSATDataModule(root=str(eurosat_root), val_fraction=1.5)
    with pytest.raises(ConfigError, match="3 values"):
        _ = EuroSATDataModule(root=str(eurosat_root), mean=[0.5, 0.5]).normalization
