"""The decoded uint8 cache: same splits and batches as streaming, never stale, safe under concurrency."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgcls import EuroSATDataModule, ImageFolderDataModule
from imgcls.data.cache import CachedImages, CachedSplit, build_cache, cache_key, source_fingerprint
from imgcls.data.datasets import ImageFileDataset, scan_class_folders
from imgcls.errors import ConfigError, DataError


@pytest.fixture
def eurosat_copy(eurosat_root: Path, tmp_path: Path) -> Path:
    """A private copy of the EuroSAT fixture that a test may edit."""
    return Path(shutil.copytree(eurosat_root, tmp_path / "eurosat"))


def make_datamodule(root: Path, cache_dir: Path, **kwargs) -> EuroSATDataModule:
    kwargs = {"image_size": 32, "batch_size": 8, "num_workers": 0, "cache_dir": str(cache_dir), **kwargs}
    datamodule = EuroSATDataModule(root=str(root), **kwargs)
    datamodule.setup()
    return datamodule


def cache_files(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("*.npy"))


def all_batches(loader) -> dict[str, torch.Tensor]:
    batches = list(loader)
    return {key: torch.cat([b[key] for b in batches]) for key in ("image", "label", "index")}


def test_cached_and_streamed_give_the_same_splits_and_batches(eurosat_root: Path, tmp_path: Path) -> None:
    cached = make_datamodule(eurosat_root, tmp_path / "cache")
    streamed = make_datamodule(eurosat_root, tmp_path / "unused", cache="never")
    assert isinstance(cached.datasets["train"], CachedSplit)
    assert not (tmp_path / "unused").exists()
    for split in ("train", "val", "test"):
        assert np.array_equal(cached.datasets[split].indices, streamed.datasets[split].indices)
        assert np.array_equal(cached.split_targets(split), streamed.split_targets(split))
    for name in ("val_dataloader", "test_dataloader", "predict_dataloader"):
        a, b = all_batches(getattr(cached, name)()), all_batches(getattr(streamed, name)())
        for key in a:
            assert a[key].dtype == b[key].dtype, key
            assert torch.equal(a[key], b[key]), key
    # one epoch of training sees every training image once, in some order
    a, b = all_batches(cached.train_dataloader()), all_batches(streamed.train_dataloader())
    order_a, order_b = a["index"].argsort(), b["index"].argsort()
    assert torch.equal(a["image"][order_a], b["image"][order_b])
    assert torch.equal(a["label"][order_a], b["label"][order_b])
    assert cached.sample_name("test", 0) == streamed.sample_name("test", 0)


def test_batch_format(eurosat_root: Path, tmp_path: Path) -> None:
    datamodule = make_datamodule(eurosat_root, tmp_path / "cache", batch_size=5)
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].dtype == torch.uint8
    assert batch["image"].shape == (5, 3, 32, 32)
    assert batch["label"].dtype == torch.int64 and batch["index"].dtype == torch.int64
    out = datamodule.transform_batch(batch, train=True)
    assert out["image"].dtype == torch.float32 and out["image"].shape == (5, 3, 32, 32)


def test_workers_read_the_cache(eurosat_root: Path, tmp_path: Path) -> None:
    datamodule = make_datamodule(eurosat_root, tmp_path / "cache", num_workers=2)
    streamed = make_datamodule(eurosat_root, tmp_path / "unused", cache="never")
    a, b = all_batches(datamodule.val_dataloader()), all_batches(streamed.val_dataloader())
    assert torch.equal(a["image"], b["image"])


def test_cache_is_reused_across_datamodules(eurosat_root: Path, tmp_path: Path, monkeypatch) -> None:
    make_datamodule(eurosat_root, tmp_path / "cache")
    (first,) = cache_files(tmp_path / "cache")
    built = first.stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("the cache was rebuilt although nothing changed")

    monkeypatch.setattr("imgcls.data.cache.build_cache", fail)
    make_datamodule(eurosat_root, tmp_path / "cache")
    assert cache_files(tmp_path / "cache") == [first]
    assert first.stat().st_mtime_ns == built


def test_changed_file_rebuilds(eurosat_copy: Path, tmp_path: Path) -> None:
    before = make_datamodule(eurosat_copy, tmp_path / "cache")
    (old_file,) = cache_files(tmp_path / "cache")
    pool = before.datasets["train"].dataset
    position = 0
    path = Path(pool.sample_name(position))
    Image.fromarray(np.full((32, 32, 3), 200, dtype=np.uint8)).save(path)
    # a same-second rewrite must still count: force a different mtime
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = make_datamodule(eurosat_copy, tmp_path / "cache")
    (new_file,) = cache_files(tmp_path / "cache")
    assert new_file != old_file  # the old one is removed, not served
    image = after.datasets["train"].dataset[position]["image"]
    expected = ImageFileDataset([path], [0], 3, 32)[0]["image"]
    assert torch.equal(image, expected)


@pytest.mark.parametrize("change", ["add", "remove"])
def test_added_or_removed_file_rebuilds(eurosat_copy: Path, tmp_path: Path, change: str) -> None:
    before = make_datamodule(eurosat_copy, tmp_path / "cache")
    n_before = len(before.datasets["train"].dataset)
    folder = eurosat_copy / "Forest"
    if change == "add":
        shutil.copy(folder / "Forest_1.jpg", folder / "Forest_99.jpg")
    else:
        (folder / "Forest_1.jpg").unlink()
    after = make_datamodule(eurosat_copy, tmp_path / "cache")
    pool = after.datasets["train"].dataset
    assert len(pool) == n_before + (1 if change == "add" else -1)
    paths, _, _ = scan_class_folders(eurosat_copy, after.class_names)
    assert [pool.sample_name(i) for i in range(len(pool))] == [str(p) for p in paths]
    streamed = ImageFileDataset(paths, [0] * len(paths), 3, 32)
    for i in (0, len(pool) // 2, len(pool) - 1):
        assert torch.equal(pool[i]["image"], streamed[i]["image"])
    assert len(cache_files(tmp_path / "cache")) == 1


def test_image_size_is_part_of_the_key(eurosat_root: Path, tmp_path: Path) -> None:
    small = make_datamodule(eurosat_root, tmp_path / "cache", image_size=16)
    large = make_datamodule(eurosat_root, tmp_path / "cache", image_size=24)
    assert small.datasets["train"].dataset.images.shape[-1] == 16
    assert large.datasets["train"].dataset.images.shape[-1] == 24


def test_over_budget_streams_with_a_log_line(eurosat_root: Path, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="imgcls.data"):
        datamodule = make_datamodule(eurosat_root, tmp_path / "cache", cache_max_gb=1e-6)
    assert not isinstance(datamodule.datasets["train"], CachedSplit)
    assert "over data.cache_max_gb" in caplog.text
    assert not cache_files(tmp_path / "cache")
    forced = make_datamodule(eurosat_root, tmp_path / "cache", cache_max_gb=1e-6, cache="always")
    assert isinstance(forced.datasets["train"], CachedSplit)


def test_cache_never_writes_into_the_dataset_root(eurosat_root: Path, tmp_path: Path) -> None:
    before = sorted(p.relative_to(eurosat_root) for p in eurosat_root.rglob("*"))
    make_datamodule(eurosat_root, tmp_path / "cache")
    assert sorted(p.relative_to(eurosat_root) for p in eurosat_root.rglob("*")) == before


def test_separate_test_folder_is_cached(fixture_roots: dict[str, Path], tmp_path: Path) -> None:
    root = fixture_roots["eurosat"]
    kwargs = {"image_size": 32, "batch_size": 4, "num_workers": 0}
    cached = ImageFolderDataModule(str(root), test_root=str(root), cache_dir=str(tmp_path / "c"), **kwargs)
    streamed = ImageFolderDataModule(str(root), test_root=str(root), cache="never", **kwargs)
    cached.setup()
    streamed.setup()
    assert isinstance(cached.datasets["test"], CachedSplit)
    a, b = all_batches(cached.test_dataloader()), all_batches(streamed.test_dataloader())
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_cache_mode_is_a_config_error(eurosat_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.cache"):
        EuroSATDataModule(root=str(eurosat_root), cache="sometimes")


def test_failed_build_leaves_no_file(eurosat_copy: Path, tmp_path: Path) -> None:
    (eurosat_copy / "Forest" / "Forest_3.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"Forest_3\.jpg"):
        make_datamodule(eurosat_copy, tmp_path / "cache")
    assert not cache_files(tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.tmp"))


def _build_in_process(root: str, target: str) -> None:
    paths, targets, _ = scan_class_folders(Path(root))
    build_cache(ImageFileDataset(paths, targets, 3, 32), Path(target))


def test_concurrent_builds_do_not_corrupt(eurosat_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "cache" / "eurosat.npy"
    context = mp.get_context("spawn")
    workers = [
        context.Process(target=_build_in_process, args=(str(eurosat_root), str(target))) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
        assert worker.exitcode == 0
    paths, targets, _ = scan_class_folders(eurosat_root)
    cached = CachedImages(target, targets)
    streamed = ImageFileDataset(paths, targets, 3, 32)
    assert all(torch.equal(cached[i]["image"], streamed[i]["image"]) for i in range(len(streamed)))
    assert not list(target.parent.glob("*.tmp"))


def test_other_sizes_of_the_same_folder_are_kept(eurosat_root: Path, tmp_path: Path) -> None:
    make_datamodule(eurosat_root, tmp_path / "cache", image_size=16)
    make_datamodule(eurosat_root, tmp_path / "cache", image_size=24)
    assert len(cache_files(tmp_path / "cache")) == 2


def test_max_per_class_caches_only_the_images_it_uses(eurosat_root: Path, tmp_path: Path) -> None:
    """A capped subset decodes its own images only, beside (not over) the whole pool's cache."""
    cache = tmp_path / "cache"
    whole = make_datamodule(eurosat_root, cache)
    capped = make_datamodule(eurosat_root, cache, max_per_class=3, val_fraction=0.34, test_fraction=0.5)
    streamed = make_datamodule(
        eurosat_root, cache, max_per_class=3, val_fraction=0.34, test_fraction=0.5, cache="never"
    )
    used = sum(len(capped.datasets[split]) for split in ("train", "val", "test"))
    assert used == 60 and len(capped.datasets["train"].dataset) == used
    assert len(whole.datasets["train"].dataset) > used
    assert len(cache_files(cache)) == 2  # the whole pool's file survives the subset's build
    for split in ("train", "val", "test"):
        assert np.array_equal(capped.split_targets(split), streamed.split_targets(split))
        a, b = all_batches(capped._loader(split)), all_batches(streamed._loader(split))
        assert all(torch.equal(a[key], b[key]) for key in a)
        names = [capped.sample_name(split, int(i)) for i in a["index"]]
        assert names == [streamed.sample_name(split, int(i)) for i in b["index"]]
        # the same files a whole-pool run would put in this split
        assert all(Path(name).parent.parent == eurosat_root for name in names)
    make_datamodule(eurosat_root, cache, max_per_class=4, val_fraction=0.34, test_fraction=0.5)
    assert len(cache_files(cache)) == 3  # another cap, another file; neither removes the other


def test_cache_file_names_keep_their_format(eurosat_root: Path, tmp_path: Path) -> None:
    """Caches built by earlier versions stay valid: datamodule, pool, folder, then the key."""
    datamodule = make_datamodule(eurosat_root, tmp_path / "cache")
    paths, targets, _ = scan_class_folders(eurosat_root, datamodule.class_names)
    fingerprint = source_fingerprint(ImageFileDataset(paths, targets, 3, 32))
    fingerprint["datamodule"] = "imgcls.data.eurosat.EuroSATDataModule"
    origin = hashlib.sha256(f"{eurosat_root.resolve()}|32|3".encode()).hexdigest()[:8]
    assert cache_files(tmp_path / "cache") == [
        tmp_path / "cache" / f"eurosatdatamodule-fit-{origin}-{cache_key(fingerprint)}.npy"
    ]
    make_datamodule(eurosat_root, tmp_path / "capped", max_per_class=3)
    (capped,) = cache_files(tmp_path / "capped")
    assert capped.name.startswith(f"eurosatdatamodule-fit.max3-seed0-{origin}-")
