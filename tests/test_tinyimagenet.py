"""Tiny ImageNet on a generated copy of its official layout: splits, names, class choices, clear errors."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

import imgcls
from imgcls.data import tinyimagenet
from imgcls.errors import ConfigError, DataError
from tests.fixtures.tinyimagenet import UNLISTED, make_tinyimagenet

GOLDFISH, SALAMANDER, BULLFROG, CAT = "n01443537", "n01629819", "n01641577", "n02124075"


def build(root: Path, **kwargs) -> imgcls.TinyImageNetDataModule:
    kwargs = {"num_workers": 0, "batch_size": 4, "cache": "never", **kwargs}
    datamodule = imgcls.TinyImageNetDataModule(str(root), **kwargs)
    datamodule.setup()
    return datamodule


def sizes(datamodule: imgcls.TinyImageNetDataModule) -> dict[str, int]:
    return {split: len(datamodule.datasets[split]) for split in ("train", "val", "test")}


def files_of(datamodule: imgcls.TinyImageNetDataModule, split: str) -> list[str]:
    # a sample reports its index in the whole pool, which sample_name reads
    return [datamodule.sample_name(split, int(item["index"])) for item in datamodule.datasets[split]]


@pytest.fixture
def own_copy(fixture_roots: dict[str, Path], tmp_path: Path) -> Path:
    """A copy of the fixture that a test may damage."""
    return Path(shutil.copytree(fixture_roots["tinyimagenet"], tmp_path / "tiny-imagenet-200"))


def test_val_images_are_the_test_split_and_names_come_from_words(fixture_roots: dict[str, Path]) -> None:
    root = fixture_roots["tinyimagenet"]
    datamodule = build(root, cache="auto")
    assert datamodule.wnids == [GOLDFISH, SALAMANDER, BULLFROG, CAT]  # sorted, whatever wnids.txt's order
    assert datamodule.class_names == ["goldfish", "European fire salamander", "bullfrog", "Egyptian cat"]
    # 6 train images per class: 1 to validation; the 3 labelled val images per class are the test split
    assert sizes(datamodule) == {"train": 20, "val": 4, "test": 12}
    for split in ("train", "val", "test"):
        assert set(datamodule.split_targets(split)) == set(range(4)), split
    assert all("/val/images/" in name for name in files_of(datamodule, "test"))
    # val_i is labelled WNIDS[i % 4] in val_annotations.txt (wnids.txt order: cat, goldfish, bullfrog, salamander)
    labels = {
        Path(datamodule.sample_name("test", int(item["index"]))).name: int(item["label"])
        for item in datamodule.datasets["test"]
    }
    assert labels["val_0.JPEG"] == 3 and labels["val_1.JPEG"] == 0 and labels["val_3.JPEG"] == 1
    # native 64 px, 3 channels even for the grayscale JPEG, ImageNet statistics
    batch = next(iter(datamodule.train_dataloader()))
    assert tuple(batch["image"].shape[1:]) == (3, 64, 64)
    assert datamodule.normalization == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    again = build(root)  # streamed from the files, not cached: the same splits
    pool = again.datasets["train"].dataset
    gray = pool.paths.index(str(root / "train" / CAT / "images" / f"{CAT}_0.JPEG"))
    assert pool[gray]["image"].shape == (3, 64, 64)
    assert np.array_equal(datamodule.split_targets("val"), again.split_targets("val"))
    assert files_of(datamodule, "val") == files_of(again, "val")


def test_a_train_folder_wnids_txt_does_not_list_is_ignored_with_one_log_line(
    fixture_roots: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="imgcls.data.tinyimagenet"):
        datamodule = build(fixture_roots["tinyimagenet"])
    lines = [r.getMessage() for r in caplog.records if r.name == "imgcls.data.tinyimagenet"]
    assert len(lines) == 1 and UNLISTED in lines[0] and "wnids.txt" in lines[0]
    assert datamodule.num_classes == 4
    assert not any(UNLISTED in name for split in ("train", "val") for name in files_of(datamodule, split))


def test_classes_and_exclude_classes_choose_wnids(fixture_roots: dict[str, Path]) -> None:
    root = fixture_roots["tinyimagenet"]
    chosen = build(root, classes=[CAT, GOLDFISH])
    assert chosen.wnids == [GOLDFISH, CAT] and chosen.class_names == ["goldfish", "Egyptian cat"]
    assert sizes(chosen) == {"train": 10, "val": 2, "test": 6}  # the val images of the other classes left out
    excluded = build(root, exclude_classes=[BULLFROG])
    assert excluded.class_names == ["goldfish", "European fire salamander", "Egyptian cat"]
    both = build(root, classes=[CAT, GOLDFISH, BULLFROG], exclude_classes=[BULLFROG])
    assert both.wnids == [GOLDFISH, CAT]
    for option in ("classes", "exclude_classes"):
        with pytest.raises(ConfigError, match=f"data.init_args.{option} names wnids .*n09999999.*use wnids"):
            imgcls.TinyImageNetDataModule(str(root), **{option: [CAT, "n09999999"]}).class_names  # noqa: B018
    with pytest.raises(ConfigError, match="leave no class"):
        imgcls.TinyImageNetDataModule(str(root), classes=[CAT], exclude_classes=[CAT]).class_names  # noqa: B018


def test_test_split_train_carves_test_from_train_and_leaves_val_unused(
    fixture_roots: dict[str, Path],
) -> None:
    datamodule = build(fixture_roots["tinyimagenet"], test_split="train")
    assert sizes(datamodule) == {"train": 16, "val": 4, "test": 4}  # 6 per class: 1 test, 1 val, 4 train
    names = [n for split in ("train", "val", "test") for n in files_of(datamodule, split)]
    assert len(set(names)) == 24 and all("/train/" in n and "/val/" not in n for n in names)
    with pytest.raises(ConfigError, match="test_split must be one of val, train"):
        imgcls.TinyImageNetDataModule(str(fixture_roots["tinyimagenet"]), test_split="test")


def test_names_fall_back_to_the_wnid_and_stay_unique(own_copy: Path) -> None:
    (own_copy / "words.txt").write_text(
        f"{GOLDFISH}\tcat, goldfish\n{CAT}\tcat, true cat\n{BULLFROG}\tbullfrog\n"
    )
    assert imgcls.TinyImageNetDataModule(str(own_copy)).class_names == [
        f"cat ({GOLDFISH})",
        SALAMANDER,  # not in words.txt
        "bullfrog",
        f"cat ({CAT})",
    ]
    (own_copy / "words.txt").unlink()
    assert imgcls.TinyImageNetDataModule(str(own_copy)).class_names == [GOLDFISH, SALAMANDER, BULLFROG, CAT]


def test_a_missing_folder_says_what_to_put_where(tmp_path: Path) -> None:
    datamodule = imgcls.TinyImageNetDataModule(str(tmp_path / "tiny-imagenet-200"))
    datamodule.prepare_data()  # download false: nothing to do
    with pytest.raises(DataError) as error:
        datamodule.setup()
    message = str(error.value)
    for part in (
        str(tmp_path / "tiny-imagenet-200"),
        "wnids.txt",
        "train/<wnid>/images",
        "val_annotations.txt",
    ):
        assert part in message
    assert tinyimagenet.URL in message and "data.init_args.download: true" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("val_0.JPEG\tn09999999\t0\t0\t63\t63", r"line 13 \(val_0.JPEG: n09999999\).*correct those lines"),
        (
            f"val_99.JPEG\t{CAT}\t0\t0\t63\t63",
            r"1 images listed in .*val_annotations.txt are missing.*val_99.JPEG",
        ),
    ],
    ids=["unknown_wnid", "missing_image"],
)
def test_a_bad_val_annotation_is_one_clear_error(own_copy: Path, line: str, expected: str) -> None:
    annotations = own_copy / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + line + "\n")
    with pytest.raises(DataError, match=expected) as error:
        build(own_copy)
    assert str(annotations) in str(error.value)
    assert sizes(build(own_copy, test_split="train"))["test"] == 4  # the val images are not read then


def test_a_listed_wnid_without_train_folder_is_a_data_error(own_copy: Path) -> None:
    shutil.rmtree(own_copy / "train" / BULLFROG)
    with pytest.raises(DataError, match=f"class {BULLFROG} of .*wnids.txt has no training folder") as error:
        build(own_copy)
    assert f"exclude_classes: [{BULLFROG}]" in str(error.value)
    assert build(own_copy, exclude_classes=[BULLFROG]).num_classes == 3


def test_download_offline_says_where_to_put_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def offline(url: str, download_root: str, **kwargs) -> None:
        calls.append((url, download_root))
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tinyimagenet, "download_and_extract_archive", offline)
    datamodule = imgcls.TinyImageNetDataModule(str(tmp_path / "tiny-imagenet-200"), download=True)
    with pytest.raises(DataError) as error:
        datamodule.prepare_data()
    assert calls == [(tinyimagenet.URL, str(tmp_path))]  # unpacks into root's parent
    message = str(error.value)
    assert tinyimagenet.URL in message and "name resolution" in message
    assert str(tmp_path / "tiny-imagenet-200") in message and "train/<wnid>/images" in message


def test_download_runs_before_the_class_names_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the CLI links class_names to the model before a Trainer calls prepare_data
    monkeypatch.setattr(
        tinyimagenet,
        "download_and_extract_archive",
        lambda url, download_root, **kw: make_tinyimagenet(Path(download_root)),
    )
    datamodule = imgcls.TinyImageNetDataModule(str(tmp_path / "tiny-imagenet-200"), download=True)
    assert datamodule.num_classes == 4
    # a root not named tiny-imagenet-200 gets the folder inside it, and is read from there
    holder = imgcls.TinyImageNetDataModule(str(tmp_path / "data"), download=True)
    assert holder.num_classes == 4 and (tmp_path / "data" / "tiny-imagenet-200" / "wnids.txt").is_file()
