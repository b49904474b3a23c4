"""Tiny ImageNet: 110,000 64x64 images of 200 ImageNet classes, 500 train and 50 val each."""

from __future__ import annotations

import logging
from collections import Counter
from functools import cached_property
from pathlib import Path

from torch.utils.data import Dataset
from torchvision.datasets.utils import download_and_extract_archive

from imgcls.data.base import ImageDataModule
from imgcls.data.datasets import ImageFileDataset, list_class_folders, list_images
from imgcls.errors import ConfigError, DataError

log = logging.getLogger(__name__)

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
FOLDER = "tiny-imagenet-200"  # what the zip unpacks to
LAYOUT = (
    "wnids.txt, words.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt "
    "(filename<TAB>wnid<TAB>box)"
)
TEST_SPLITS = ("val", "train")


def read_wnids(path: Path) -> list[str]:
    """The WordNet ids of ``wnids.txt``, one a line, in file order."""
    wnids = list(dict.fromkeys(line.strip() for line in path.read_text().splitlines() if line.strip()))
    if not wnids:
        raise DataError(f"{path} lists no classes; restore it from {FOLDER}.zip ({URL})")
    return wnids


def read_words(path: Path) -> dict[str, str]:
    """{wnid: first name} of ``words.txt`` (``wnid<TAB>name, other name, ...``); empty when it is absent."""
    if not path.is_file():
        return {}
    words = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        wnid, _, names = line.partition("\t")
        first = names.split(",")[0].strip()
        if wnid.strip() and first:
            words[wnid.strip()] = first
    return words


def readable_names(wnids: list[str], words: dict[str, str]) -> dict[str, str]:
    """{wnid: its first name in ``words``, or the wnid itself}; a name two wnids share gets ``(wnid)``."""
    first = {wnid: words.get(wnid, wnid) for wnid in wnids}
    counts = Counter(first.values())
    return {wnid: f"{name} ({wnid})" if counts[name] > 1 else name for wnid, name in first.items()}


class TinyImageNetDataModule(ImageDataModule):
    """Tiny ImageNet as ``tiny-imagenet-200.zip`` unpacks; the labelled val images are the test split.

    ``root`` is the ``tiny-imagenet-200`` folder (or the folder holding it): ``wnids.txt`` names the
    classes, ``words.txt`` their readable names, ``train/<wnid>/images/`` and ``val/images/`` with
    ``val/val_annotations.txt`` hold the images; the unlabeled ``test/`` is not used (point
    ``predict_root`` at ``test/images`` to predict it). Class folders under ``train/`` that
    ``wnids.txt`` does not list are ignored. Labels follow the sorted wnids; ``class_names`` are the
    first names of ``words.txt`` (``n01443537`` -> ``goldfish``).

    Args:
        root: the tiny-imagenet-200 folder.
        download: fetch and unpack ``tiny-imagenet-200.zip`` in ``prepare_data`` when the folder is
            missing (into root's parent when root is named ``tiny-imagenet-200``, else into root).
        test_split: ``val``: the 50 labelled val images per class are the test split and validation is
            a seeded ``val_fraction`` of train; ``train``: test is a seeded ``test_fraction`` of train too.
        classes: wnids to keep (a subset for pre-training on some classes); None keeps all.
        exclude_classes: wnids to leave out (the held-out classes of a few-shot protocol).
        image_size: None keeps the native 64 px.
        **kwargs: see ``ImageDataModule``.
    """

    def __init__(
        self,
        root: str,
        download: bool = False,
        test_split: str = "val",
        classes: list[str] | None = None,
        exclude_classes: list[str] | None = None,
        image_size: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(root=root, image_size=image_size, **kwargs)
        if test_split not in TEST_SPLITS:
            raise ConfigError(
                f"data.init_args.test_split must be one of {', '.join(TEST_SPLITS)}, got {test_split!r}"
            )
        self.download = download
        self.test_split = test_split
        self.classes = list(classes) if classes is not None else None
        self.exclude_classes = list(exclude_classes or [])

    def _found(self) -> Path | None:
        for folder in (self.root, self.root / FOLDER):
            if (folder / "wnids.txt").is_file():
                return folder
        return None

    def _download_root(self) -> Path:
        return self.root.parent if self.root.name == FOLDER else self.root

    def _data_folder(self) -> Path:
        folder = self._found()
        if folder is None and self.download:
            # the model links class_names before a Trainer calls prepare_data
            self.prepare_data()
            folder = self._found()
        if folder is None:
            raise DataError(
                f"Tiny ImageNet not found in {self.root}. Expected the folder {FOLDER}.zip unpacks to: {LAYOUT}. "
                f"Unpack {URL} and point data.init_args.root at its {FOLDER} folder, or set "
                "data.init_args.download: true on a machine with internet."
            )
        return folder

    def prepare_data(self) -> None:
        if not self.download or self._found() is not None:
            return
        into = self._download_root()
        try:
            download_and_extract_archive(URL, download_root=str(into), remove_finished=True)
        except Exception as err:  # network errors come in many types
            raise DataError(
                f"downloading {URL} into {into} failed ({err}). Without internet, download it elsewhere and "
                f"unpack it so that {into / FOLDER} holds {LAYOUT}; then run again."
            ) from err

    @cached_property
    def _listed_wnids(self) -> list[str]:
        return read_wnids(self._data_folder() / "wnids.txt")

    @cached_property
    def wnids(self) -> list[str]:
        """The wnids of the classes used, sorted: label ``i`` is ``wnids[i]``."""
        listed = set(self._listed_wnids)
        for option, chosen in (("classes", self.classes or []), ("exclude_classes", self.exclude_classes)):
            unknown = [wnid for wnid in chosen if wnid not in listed]
            if unknown:
                raise ConfigError(
                    f"data.init_args.{option} names wnids that {self._data_folder() / 'wnids.txt'} does not list: "
                    f"{', '.join(unknown)}; use wnids from that file (such as {self._listed_wnids[0]})"
                )
        kept = set(self.classes) if self.classes is not None else listed
        wnids = sorted(kept - set(self.exclude_classes))
        if not wnids:
            raise ConfigError(
                "data.init_args.classes and data.init_args.exclude_classes leave no class; keep at least one"
            )
        return wnids

    def _class_names(self) -> list[str]:
        # names over every listed wnid, so that a class keeps its name whichever classes are chosen
        names = readable_names(self._listed_wnids, read_words(self._data_folder() / "words.txt"))
        return [names[wnid] for wnid in self.wnids]

    def _train_files(self) -> tuple[list[Path], list[int]]:
        folder = self._data_folder() / "train"
        if not folder.is_dir():
            raise DataError(f"{folder} is missing; Tiny ImageNet needs {LAYOUT}. Restore it from {URL}.")
        unlisted = sorted(set(list_class_folders(folder)) - set(self._listed_wnids))
        if unlisted:
            log.warning(
                "%s: ignoring class folders that wnids.txt does not list: %s", folder, ", ".join(unlisted)
            )
        paths, targets = [], []
        for label, wnid in enumerate(self.wnids):
            images = folder / wnid / "images"
            if not (folder / wnid).is_dir():
                raise DataError(
                    f"class {wnid} of {self._data_folder() / 'wnids.txt'} has no training folder {folder / wnid}; "
                    f"restore it from {URL}, or leave the class out with data.init_args.exclude_classes: [{wnid}]"
                )
            files = list_images(images) if images.is_dir() else []
            if not files:
                raise DataError(f"{images} holds no images; restore train/{wnid}/images/*.JPEG from {URL}")
            paths += files
            targets += [label] * len(files)
        return paths, targets

    def _val_files(self) -> tuple[list[Path], list[int]]:
        folder = self._data_folder() / "val"
        annotations = folder / "val_annotations.txt"
        if not annotations.is_file():
            raise DataError(
                f"{annotations} is missing: it labels the val images that test_split: val tests on. Restore it "
                f"from {URL}, or set data.init_args.test_split: train to test on a split of the training images."
            )
        listed = set(self._listed_wnids)
        label_of = {wnid: label for label, wnid in enumerate(self.wnids)}
        paths, targets, unknown = [], [], []
        for number, line in enumerate(annotations.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = [field.strip() for field in line.split("\t")]
            if len(fields) < 2:
                raise DataError(f"{annotations} line {number} is not 'filename<TAB>wnid<TAB>box': {line!r}")
            name, wnid = fields[:2]
            if wnid not in listed:
                unknown.append(f"line {number} ({name}: {wnid})")
            elif wnid in label_of:
                paths.append(folder / "images" / name)
                targets.append(label_of[wnid])
        if unknown:
            raise DataError(
                f"{annotations} labels {len(unknown)} images with wnids that wnids.txt does not list, e.g. "
                f"{unknown[0]}; correct those lines or restore the file from {URL}"
            )
        missing = [path for path in paths if not path.is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} images listed in {annotations} are missing from {folder / 'images'}, e.g. "
                f"{missing[0].name}; restore them from {URL}, or set data.init_args.test_split: train"
            )
        return paths, targets

    def _pools(self) -> dict[str, Dataset]:
        pools = {"fit": ImageFileDataset(*self._train_files(), 3, self.image_size)}
        if self.test_split == "val":
            pools["test"] = ImageFileDataset(*self._val_files(), 3, self.image_size)
        return pools
