"""The dataset datamodules on generated fixtures of every layout, and one clear error per kind of bad input."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import imgcls
from imgcls.data.cache import source_fingerprint
from imgcls.data.datasets import ImageFileDataset
from imgcls.data.eurosat_ms import BAND_NAMES, BAND_STATS
from imgcls.errors import ConfigError, DataError
from tests.conftest import REPO
from tests.fixtures.eurosat_ms import band_means

SHARED = REPO.parent / "shared" / "data"


def build(cls: type, root: Path, **kwargs) -> imgcls.ImageDataModule:
    datamodule = cls(str(root), num_workers=0, batch_size=4, **kwargs)
    datamodule.setup()
    return datamodule


def split_sizes(datamodule: imgcls.ImageDataModule) -> dict[str, int]:
    return {name: len(datamodule.datasets[name]) for name in ("train", "val", "test")}


# datamodule, fixture, arguments, classes, channels, train+val images, official test images (None: carved)
LAYOUTS = {
    "mnist_idx_gz": (imgcls.MNISTDataModule, "mnist", {}, 10, 1, 60, 20),
    "fashion_mnist_torchvision": (
        imgcls.FashionMNISTDataModule,
        "fashion_mnist",
        {"in_chans": 3},
        10,
        3,
        60,
        20,
    ),
    "cifar10_pickle": (imgcls.CIFAR10DataModule, "cifar10", {}, 10, 3, 50, 20),
    "cifar10_folders": (imgcls.CIFAR10DataModule, "cifar10_folders", {}, 10, 3, 50, 20),
    "eurosat_ms": (imgcls.EuroSATMSDataModule, "eurosat_ms", {"image_size": 32}, 10, 13, 50, None),
    "cub": (imgcls.CUBDataModule, "cub", {"image_size": 32}, 4, 3, 16, 8),
    "miniimagenet_csv": (imgcls.MiniImageNetDataModule, "miniimagenet", {"image_size": 32}, 4, 3, 24, None),
    "miniimagenet_folders": (
        imgcls.MiniImageNetDataModule,
        "miniimagenet_folders",
        {"image_size": 32},
        4,
        3,
        24,
        None,
    ),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_loads_with_its_splits(layout: str, fixture_roots: dict[str, Path]) -> None:
    cls, fixture, kwargs, classes, chans, trainval, test = LAYOUTS[layout]
    datamodule = build(cls, fixture_roots[fixture], **kwargs)
    sizes = split_sizes(datamodule)
    assert datamodule.num_classes == classes and datamodule.in_chans == chans
    if test is not None:  # the official test set stays the test set; validation comes from training
        assert sizes["test"] == test and sizes["train"] + sizes["val"] == trainval
    else:  # a seeded stratified split of one pool
        assert sizes["train"] + sizes["val"] + sizes["test"] == trainval
    for split in ("train", "val", "test"):
        assert set(datamodule.split_targets(split)) == set(range(classes)), split
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape[1] == chans
    normalized = datamodule.transform_batch(batch, train=True)["image"]
    assert torch.isfinite(normalized).all() and normalized.abs().mean() < 10


def test_splits_are_seeded(fixture_roots: dict[str, Path]) -> None:
    first, again = (build(imgcls.MNISTDataModule, fixture_roots["mnist"], seed=3) for _ in range(2))
    other = build(imgcls.MNISTDataModule, fixture_roots["mnist"], seed=4)
    assert np.array_equal(first.datasets["val"].indices, again.datasets["val"].indices)
    assert not np.array_equal(first.datasets["val"].indices, other.datasets["val"].indices)


def test_mnist_grayscale_repeats_to_rgb_and_leaves_root_untouched(fixture_roots: dict[str, Path]) -> None:
    root = fixture_roots["mnist"]
    before = sorted(p.name for p in root.iterdir())
    gray = build(imgcls.MNISTDataModule, root, image_size=64)
    rgb = build(imgcls.MNISTDataModule, root, image_size=64, in_chans=3)
    image = rgb.datasets["train"][0]["image"]
    assert image.shape == (3, 64, 64) and torch.equal(image[0], image[2])
    assert torch.equal(gray.datasets["train"][0]["image"][0], image[0])
    assert rgb.normalization == ([0.1307] * 3, [0.3081] * 3)
    assert sorted(p.name for p in root.iterdir()) == before  # read in place, nothing unpacked into root


@pytest.mark.skipif(not (SHARED / "mnist" / "raw").is_dir(), reason="the real MNIST idx files are not here")
def test_real_mnist_idx_files_load_without_download() -> None:
    datamodule = imgcls.MNISTDataModule(str(SHARED / "mnist" / "raw"))
    pools = datamodule._pools()
    assert len(pools["fit"]) == 60_000 and len(pools["test"]) == 10_000
    assert np.bincount(pools["test"].targets).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]


def test_cifar_layouts_agree_on_classes(fixture_roots: dict[str, Path]) -> None:
    pickled = imgcls.CIFAR10DataModule(str(fixture_roots["cifar10"]))
    folders = imgcls.CIFAR10DataModule(str(fixture_roots["cifar10_folders"]))
    assert pickled.class_names == folders.class_names
    assert imgcls.CIFAR10DataModule(str(fixture_roots["cifar10"] / "cifar-10-batches-py")).num_classes == 10


def test_eurosat_ms_bands_pick_channels_and_statistics(fixture_roots: dict[str, Path]) -> None:
    bands = ["B04", "B03", "B02", "B8A"]
    datamodule = build(imgcls.EuroSATMSDataModule, fixture_roots["eurosat_ms"], bands=bands)
    assert datamodule.in_chans == 4
    mean, std = datamodule.normalization
    assert mean == pytest.approx([BAND_STATS[b][0] / 1e4 for b in bands])
    assert std == pytest.approx([BAND_STATS[b][1] / 1e4 for b in bands])
    # the bands arrive in the asked order, as reflectance (digital number / 10000)
    picked = [BAND_NAMES.index(b) for b in bands]
    sample = datamodule.datasets["train"][0]
    expected = band_means(sample["label"])[picked] / 1e4
    assert sample["image"].mean(dim=(1, 2)).tolist() == pytest.approx(expected, abs=3e-3)
    # the one file stored band-planar reads the same way
    planar = datamodule.datasets["train"].dataset
    first = planar.paths.index(str(fixture_roots["eurosat_ms"] / "AnnualCrop" / "AnnualCrop_1.tif"))
    assert planar[first]["image"].mean(dim=(1, 2)).tolist() == pytest.approx(
        band_means(0)[picked] / 1e4, abs=3e-3
    )


def test_eurosat_ms_streams_float_reflectance_past_the_uint8_cache(
    fixture_roots: dict[str, Path], tmp_path: Path
) -> None:
    root = fixture_roots["eurosat_ms"]
    datamodule = build(
        imgcls.EuroSATMSDataModule, root, bands=["B04", "B8A"], cache="always", cache_dir=str(tmp_path)
    )
    assert not list(tmp_path.glob("*.npy"))
    pool = datamodule.datasets["train"].dataset
    assert isinstance(pool, ImageFileDataset) and source_fingerprint(pool) is None
    image = pool[0]["image"]
    assert image.dtype == torch.float32 and image.shape == (2, 64, 64)
    chosen = pool.select(np.array([0, 3]))  # a selection reads the same bands
    assert torch.equal(chosen[0]["image"], image)
    assert torch.equal(pickle.loads(pickle.dumps(pool))[0]["image"], image)  # as loader workers receive it


def test_eurosat_ms_predicts_on_a_folder_of_tiffs(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    root = fixture_roots["eurosat_ms"]
    for name in ("Forest_1.tif", "River_2.tif"):
        shutil.copy(root / name.split("_")[0] / name, (tmp_path / name))
    datamodule = imgcls.EuroSATMSDataModule(
        str(root), predict_root=str(tmp_path), image_size=32, num_workers=0, batch_size=4
    )
    datamodule.setup("predict")
    batch = next(iter(datamodule.predict_dataloader()))
    assert batch["image"].shape == (2, 13, 32, 32) and batch["image"].dtype == torch.float32


def test_cub_uses_the_official_split(fixture_roots: dict[str, Path]) -> None:
    datamodule = build(
        imgcls.CUBDataModule, fixture_roots["cub"].parent, image_size=32
    )  # the folder above works too
    assert datamodule.class_names[0] == "Black_footed_Albatross"
    test_names = {datamodule.sample_name("test", i) for i in datamodule.datasets["test"].indices}
    assert all(name.endswith(("_0004.jpg", "_0005.jpg")) for name in test_names)


def test_miniimagenet_splits_choose_the_classes(fixture_roots: dict[str, Path]) -> None:
    both = imgcls.MiniImageNetDataModule(str(fixture_roots["miniimagenet"]), splits=["train", "val"])
    assert both.num_classes == 6
    folders = imgcls.MiniImageNetDataModule(
        str(fixture_roots["miniimagenet_folders"]), splits=["train", "val"]
    )
    assert folders.class_names == both.class_names


def test_intel_through_image_folder_with_test_and_predict_folders(fixture_roots: dict[str, Path]) -> None:
    root = fixture_roots["intel"]
    datamodule = build(
        imgcls.ImageFolderDataModule,
        root / "seg_train",
        test_root=str(root / "seg_test"),
        predict_root=str(root / "seg_pred"),
        image_size=32,
    )
    assert len(datamodule.datasets["test"]) == 18
    predictions = next(iter(datamodule.predict_dataloader()))
    assert predictions["image"].shape == (4, 3, 32, 32)  # the 29 px image is resized like the others


# --- bad input: one clear message each ------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "fixture", "words"),
    [
        (imgcls.MNISTDataModule, "cifar10", "idx files not found"),
        (imgcls.FashionMNISTDataModule, "eurosat", "idx files not found"),
        (imgcls.CIFAR10DataModule, "mnist", "CIFAR-10 not found"),
        (imgcls.CUBDataModule, "eurosat", "CUB-200-2011 not found"),
        (imgcls.EuroSATMSDataModule, "cub", "EuroSAT multispectral not found"),
        (imgcls.EuroSATMSDataModule, "eurosat", "that is EuroSAT RGB, use imgcls.EuroSATDataModule"),
        (imgcls.MiniImageNetDataModule, "cub", "split file"),
    ],
)
def test_a_root_with_another_layout_says_what_is_expected(
    cls: type, fixture: str, words: str, fixture_roots: dict[str, Path]
) -> None:
    with pytest.raises(DataError, match=words):
        build(cls, fixture_roots[fixture])


@pytest.mark.parametrize("missing", ["train_test_split.txt", "images.txt", "classes.txt"])
def test_cub_names_a_missing_index_file(missing: str, fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    root = shutil.copytree(fixture_roots["cub"], tmp_path / "CUB_200_2011")
    (root / missing).unlink()
    with pytest.raises(DataError, match=f"{missing} is missing"):
        build(imgcls.CUBDataModule, root)


def test_miniimagenet_names_a_missing_split_file(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    root = shutil.copytree(fixture_roots["miniimagenet"], tmp_path / "mini")
    (root / "val.csv").unlink()
    build(imgcls.MiniImageNetDataModule, root, image_size=32)  # the default train classes do not need it
    with pytest.raises(DataError, match=r"val\.csv is missing"):
        build(imgcls.MiniImageNetDataModule, root, splits=["train", "val"])
    (root / "images" / "n0153282900000001.jpg").unlink()
    with pytest.raises(DataError, match="missing from"):
        build(imgcls.MiniImageNetDataModule, root)


def test_unknown_band_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown band B13.*B01, B02"):
        imgcls.EuroSATMSDataModule("unused", bands=["B04", "B13"])
    with pytest.raises(ConfigError, match="repeated"):
        imgcls.EuroSATMSDataModule("unused", bands=["B04", "B04"])


def test_a_corrupt_tiff_is_named(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    root = shutil.copytree(fixture_roots["eurosat_ms"], tmp_path / "ms")
    bad = root / "Forest" / "Forest_2.tif"
    bad.write_bytes(bad.read_bytes()[:300])
    datamodule = build(imgcls.EuroSATMSDataModule, root)
    pool = datamodule.datasets["train"].dataset
    with pytest.raises(DataError, match=r"cannot read GeoTIFF .*Forest_2\.tif"):
        pool[pool.paths.index(str(bad))]


def test_a_corrupt_idx_file_is_named(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    root = shutil.copytree(fixture_roots["mnist"], tmp_path / "mnist")
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz"):
        build(imgcls.MNISTDataModule, root)


def test_the_cli_reports_a_wrong_root_in_one_line(
    fixture_roots: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from imgcls.commands import main  # here: the other tests need only the data package

    config = REPO / "configs" / "cnn64_mnist.yaml"
    args = [
        "fit",
        "--config",
        str(config),
        f"--runs_dir={tmp_path}",
        f"--data.init_args.root={fixture_roots['cifar10']}",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--trainer.accelerator=cpu", "--trainer.max_epochs=1"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("imgcls: error: MNIST idx files not found") and "data.root" in message
