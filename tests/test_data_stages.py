"""Each stage sets up, and decodes into the cache, only the splits it uses; splits never depend on the stage."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from imgcls import CIFAR10DataModule, EuroSATDataModule, ImageFolderDataModule
from imgcls.errors import DataError

SPLITS = ("train", "val", "test")


def cache_files(cache_dir: Path) -> list[str]:
    return sorted(path.name for path in cache_dir.glob("*.npy"))


def cifar(root: Path, cache_dir: Path, **kwargs) -> CIFAR10DataModule:
    return CIFAR10DataModule(str(root), batch_size=4, num_workers=0, cache_dir=str(cache_dir), **kwargs)


def eurosat(root: Path, cache_dir: Path, **kwargs) -> EuroSATDataModule:
    kwargs = {"image_size": 32, "batch_size": 4, "num_workers": 0, "cache_dir": str(cache_dir), **kwargs}
    return EuroSATDataModule(str(root), **kwargs)


def all_batches(loader) -> dict[str, torch.Tensor]:
    batches = list(loader)
    return {key: torch.cat([b[key] for b in batches]) for key in ("image", "label", "index")}


def named_batches(datamodule, split: str) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """A split's images and labels with the names of their samples, in name order (train shuffles)."""
    batches = all_batches(getattr(datamodule, f"{split}_dataloader")())
    names = [datamodule.sample_name(split, int(i)) for i in batches["index"]]
    order = sorted(range(len(names)), key=names.__getitem__)
    return [names[i] for i in order], batches["image"][order], batches["label"][order]


@pytest.mark.parametrize("stage", ["test", "predict"])
def test_an_official_test_set_is_all_a_test_run_decodes(
    stage: str, fixture_roots: dict[str, Path], tmp_path: Path
) -> None:
    """Defect 16: ``test`` and ``predict`` decoded CIFAR-10's 50,000 training images too."""
    datamodule = cifar(fixture_roots["cifar10"], tmp_path / "cache")
    datamodule.setup(stage)
    (only,) = cache_files(tmp_path / "cache")
    assert only.startswith("cifar10datamodule-test-")
    assert len(datamodule.datasets[stage]) == 20 and "train" not in datamodule.datasets
    assert len(np.load(tmp_path / "cache" / only, mmap_mode="r")) == 20


def test_fit_decodes_the_training_pool_and_a_later_test_adds_the_test_split(
    fixture_roots: dict[str, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    datamodule = cifar(fixture_roots["cifar10"], cache)
    datamodule.setup("fit")
    assert set(datamodule.datasets) == {"train", "val"}
    (fit_file,) = cache_files(cache)
    assert fit_file.startswith("cifar10datamodule-fit-")
    datamodule.setup("test")  # trainer.test after trainer.fit, on the same datamodule
    assert set(datamodule.datasets) == {"train", "val", "test"}
    assert len(cache_files(cache)) == 2
    everything = cifar(fixture_roots["cifar10"], cache)
    everything.setup()
    for split in SPLITS:
        assert np.array_equal(datamodule.datasets[split].indices, everything.datasets[split].indices)


def test_a_test_folder_is_logged_by_its_own_name(
    fixture_roots: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    intel = fixture_roots["intel"]
    datamodule = ImageFolderDataModule(
        str(intel / "seg_train"),
        test_root=str(intel / "seg_test"),
        image_size=32,
        num_workers=0,
        cache_dir=str(tmp_path / "cache"),
    )
    with caplog.at_level(logging.INFO, logger="imgcls.data"):
        datamodule.setup("test")
    decoding = [
        record.getMessage() for record in caplog.records if record.getMessage().startswith("decoding")
    ]
    (line,) = [message for message in decoding if "imagefolderdatamodule-test-" in message]
    assert line.startswith(f"decoding 18 images of {intel / 'seg_test'} into the cache")
    assert "seg_train" not in line
    (only,) = cache_files(tmp_path / "cache")
    assert only.startswith("imagefolderdatamodule-test-")


def test_a_carved_test_split_decodes_its_images_only_until_the_pool_is_cached(
    eurosat_root: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    tested = eurosat(eurosat_root, cache)
    tested.setup("test")
    (part,) = cache_files(cache)
    assert len(np.load(cache / part, mmap_mode="r")) == len(tested.datasets["test"]) == 20  # of 80
    fitted = eurosat(eurosat_root, cache)
    fitted.setup("fit")  # the whole pool, beside (not over) the test images' file
    whole = [name for name in cache_files(cache) if name != part]
    assert len(whole) == 1 and len(np.load(cache / whole[0], mmap_mode="r")) == 80
    again = eurosat(eurosat_root, cache)
    again.setup("test")  # now served from the whole pool's cache: nothing new decoded
    assert sorted([part, *whole]) == cache_files(cache)
    assert again.datasets["test"].dataset.path.name == whole[0]
    streamed = eurosat(eurosat_root, cache, cache="never")
    streamed.setup()
    expected = named_batches(streamed, "test")
    for datamodule in (tested, fitted, again):
        datamodule.setup("test")
        got = named_batches(datamodule, "test")
        assert got[0] == expected[0]
        assert torch.equal(got[1], expected[1]) and torch.equal(got[2], expected[2])


@pytest.mark.parametrize("max_per_class", [None, 3])
@pytest.mark.parametrize("order", [("test", "fit"), ("validate", "test", "fit"), ("predict", "fit"), (None,)])
def test_splits_do_not_depend_on_the_stage_that_made_them(
    order: tuple, max_per_class: int | None, eurosat_root: Path, tmp_path: Path
) -> None:
    kwargs = {"max_per_class": max_per_class, "val_fraction": 0.25, "test_fraction": 0.25}
    streamed = eurosat(eurosat_root, tmp_path / "unused", cache="never", **kwargs)
    streamed.setup()
    datamodule = eurosat(eurosat_root, tmp_path / "cache", **kwargs)
    for stage in order:
        datamodule.setup(stage)
    for split in SPLITS:
        expected, got = named_batches(streamed, split), named_batches(datamodule, split)
        assert got[0] == expected[0], split
        assert torch.equal(got[1], expected[1]) and torch.equal(got[2], expected[2]), split
        assert np.array_equal(datamodule.split_targets(split), streamed.split_targets(split)), split


def test_split_targets_decode_nothing(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    """Class-distribution reports after ``test`` ask for every split's labels."""
    everything = cifar(fixture_roots["cifar10"], tmp_path / "all")
    everything.setup()
    datamodule = cifar(fixture_roots["cifar10"], tmp_path / "cache")
    for split in SPLITS:
        assert np.array_equal(datamodule.split_targets(split), everything.split_targets(split))
    assert not cache_files(tmp_path / "cache")
    datamodule.setup("test")
    for split in SPLITS:
        assert np.array_equal(datamodule.split_targets(split), everything.split_targets(split))
    (only,) = cache_files(tmp_path / "cache")
    assert only.startswith("cifar10datamodule-test-")


def test_predict_on_a_folder_decodes_no_pool(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    intel = fixture_roots["intel"]
    datamodule = ImageFolderDataModule(
        str(intel / "seg_train"),
        test_root=str(intel / "seg_test"),
        predict_root=str(intel / "seg_pred"),
        image_size=32,
        num_workers=0,
        cache_dir=str(tmp_path / "cache"),
    )
    datamodule.setup("predict")
    assert set(datamodule.datasets) == {"predict"} and len(datamodule.datasets["predict"]) == 5
    assert not (tmp_path / "cache").exists()


def intel_predicting_on(
    fixture_roots: dict[str, Path], predict_root: Path, tmp_path: Path
) -> ImageFolderDataModule:
    intel = fixture_roots["intel"]
    return ImageFolderDataModule(
        str(intel / "seg_train"),
        test_root=str(intel / "seg_test"),
        predict_root=str(predict_root),
        image_size=32,
        num_workers=0,
        cache_dir=str(tmp_path / "cache"),
    )


def test_predict_root_may_be_one_image_file(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    image = sorted((fixture_roots["intel"] / "seg_pred").iterdir())[0]
    datamodule = intel_predicting_on(fixture_roots, image, tmp_path)
    datamodule.setup("predict")
    assert len(datamodule.datasets["predict"]) == 1
    assert datamodule.sample_name("predict", 0) == str(image)
    assert next(iter(datamodule.predict_dataloader()))["image"].shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing", r"predict_root .*missing does not exist; .* a folder of images or .* one image file"),
        ("notes.txt", r"predict_root .*notes\.txt is not an image file"),
    ],
)
def test_a_predict_root_that_is_no_image_says_what_it_may_be(
    name: str, message: str, fixture_roots: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    datamodule = intel_predicting_on(fixture_roots, tmp_path / name, tmp_path)
    with pytest.raises(DataError, match=message):
        datamodule.setup("predict")


def test_predict_folder_names_the_files_it_skips(
    fixture_roots: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "pred"
    shutil.copytree(fixture_roots["intel"] / "seg_pred", folder)
    for name in ("notes.txt", "data.csv", ".DS_Store"):
        (folder / name).write_text("not an image")
    datamodule = intel_predicting_on(fixture_roots, folder, tmp_path)
    with caplog.at_level(logging.WARNING, logger="imgcls.data"):
        datamodule.setup("predict")
    assert len(datamodule.datasets["predict"]) == 5  # the images are all predicted, the others skipped
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"predict folder {folder}: 2 files are not images and are skipped: data.csv, notes.txt"
    ]
    # a folder of no images at all stays an error that names it
    for image in datamodule.datasets["predict"].paths:
        Path(image).unlink()
    with pytest.raises(DataError, match=f"predict folder {folder} holds no images"):
        intel_predicting_on(fixture_roots, folder, tmp_path).setup("predict")


def test_building_the_cache_leaves_the_training_seed_alone(eurosat_root: Path, tmp_path: Path) -> None:
    """The same seed gives the same batches whether the run decodes the cache or reuses it."""

    def first_epoch(cache_dir: Path, **kwargs) -> torch.Tensor:
        torch.manual_seed(0)
        datamodule = eurosat(eurosat_root, cache_dir, batch_size=8, **kwargs)
        datamodule.setup("fit")
        return all_batches(datamodule.train_dataloader())["index"]

    built = first_epoch(tmp_path / "cache")
    reused = first_epoch(tmp_path / "cache")
    streamed = first_epoch(tmp_path / "unused", cache="never")
    assert torch.equal(built, reused)
    assert torch.equal(built, streamed)


@pytest.mark.parametrize(
    ("ranks", "batch_size", "dropped"), [(1, 7, True), (1, 8, False), (2, 8, True), (2, 10, False)]
)
def test_no_rank_trains_on_a_last_batch_of_one(
    fixture_roots: dict[str, Path], tmp_path: Path, ranks: int, batch_size: int, dropped: bool
) -> None:
    """50 training images: one process with batches of 7 ends on 1 image, and so does each of 2
    ranks (25 images each) with batches of 8; batch norm fails on such a batch in training."""
    from types import SimpleNamespace

    datamodule = eurosat(fixture_roots["eurosat"], tmp_path, batch_size=batch_size, cache="never")
    datamodule.trainer = SimpleNamespace(world_size=ranks)
    datamodule.setup("fit")
    assert len(datamodule.datasets["train"]) == 50
    train = datamodule.train_dataloader()
    # the batch sampler decides (a loader given one reports drop_last False whatever it does)
    assert train.batch_sampler.drop_last is dropped
    if ranks == 1:
        assert min(len(batch) for batch in train.batch_sampler) == (
            batch_size if dropped else 50 % batch_size
        )
    assert datamodule.val_dataloader().drop_last is False


def test_a_loader_asked_for_before_its_split_is_set_up_names_the_call(
    fixture_roots: dict[str, Path], tmp_path: Path
) -> None:
    datamodule = eurosat(fixture_roots["eurosat"], tmp_path, cache="never")
    with pytest.raises(RuntimeError, match=r"call setup\('fit'\) before train_dataloader\(\)"):
        datamodule.train_dataloader()
    datamodule.setup("validate")  # decodes nothing for the other splits
    assert len(datamodule.val_dataloader().dataset) > 0
    with pytest.raises(RuntimeError, match=r"call setup\('test'\) before test_dataloader\(\)"):
        datamodule.test_dataloader()


def test_training_batches_are_scaled_only_when_asked(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    datamodule = eurosat(fixture_roots["eurosat"], tmp_path, cache="never")
    batch = {"image": torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)}
    assert datamodule.transform_batch(batch, train=True)["image"].shape[-1] == 32
    assert datamodule.last_train_side is None
    datamodule.set_train_scale(0.5, multiple=8)
    assert datamodule.transform_batch(batch, train=True)["image"].shape[-2:] == (16, 16)
    assert datamodule.transform_batch(batch, train=False)["image"].shape[-1] == 32  # evaluation: full size
    assert datamodule.last_train_side == 16
    datamodule.set_train_scale(None)
    assert datamodule.transform_batch(batch, train=True)["image"].shape[-1] == 32
