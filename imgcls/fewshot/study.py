"""One few-shot study: a backbone, a datamodule split, seeded episodes and the methods that score them.

Every image any episode uses is embedded once (eval mode, normalized as the datamodule's loaders
would give it to a model); the frozen-feature methods then index that one tensor with the episodes'
(E, N, K) and (E, N, Q) position arrays, a chunk of episodes at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from imgcls.callbacks.run_info import dataset_info
from imgcls.data.base import ImageDataModule
from imgcls.data.transforms import BatchTransform, check_augmentation
from imgcls.errors import ConfigError
from imgcls.fewshot.episodes import Episodes, EpisodeSampler
from imgcls.fewshot.methods import (
    FROZEN_METHODS,
    classify_linear,
    classify_prototypes,
    episode_accuracy,
    finetune_episode,
    query_labels,
    summarize_accuracies,
)
from imgcls.models.backbones import create_backbone, is_weights_path
from imgcls.models.checkpoints import classifier_from_checkpoint, read_checkpoint
from imgcls.models.classifier import check_checkpoint_channels
from imgcls.models.weights import load_backbone_weights

log = logging.getLogger(__name__)

Split = Literal["train", "val", "test", "all"]
Method = Literal["prototypes", "linear", "finetune"]
# the splits "all" joins, and the datamodule stage that sets each split up
_PARTS = ("train", "val", "test")
_STAGES = {"train": "fit", "val": "validate", "test": "test", "all": None}
# features gathered for one chunk of episodes: (chunk, N, K + Q, D) floats stay under 128 MB
EPISODE_CHUNK_ELEMENTS = 2**25


@dataclass
class FewShotBackbone:
    """A feature extractor and where its weights came from.

    Attributes:
        module: maps (B, C, H, W) images to (B, num_features) features.
        num_features: the feature width.
        backbone: its architecture name.
        checkpoint: the imgcls checkpoint it came from, if any.
        pretrained: ``pretrained`` as given without a checkpoint (False, True or a weights file).
    """

    module: nn.Module
    num_features: int
    backbone: str
    checkpoint: str | None = None
    pretrained: bool | str = False

    @property
    def source(self) -> str:
        """Where the weights came from, in words."""
        if self.checkpoint:
            return f"checkpoint {self.checkpoint}"
        if self.pretrained is True:
            return "the library's ImageNet weights"
        return f"weights {self.pretrained}" if self.pretrained else "random weights"


def load_backbone(
    ckpt_path: str | Path | None = None,
    backbone: str | None = None,
    pretrained: bool | str = False,
    in_chans: int = 3,
    seed: int = 0,
) -> FewShotBackbone:
    """The backbone of an imgcls checkpoint, or a named backbone with ``pretrained`` weights.

    Args:
        ckpt_path: an imgcls checkpoint; its backbone is rebuilt from its hyperparameters.
        backbone: a backbone name (``create_backbone``); with a checkpoint, it must be the checkpoint's.
        pretrained: without a checkpoint: False (random weights, drawn from ``seed``), True (the
            library's ImageNet weights) or a weights file (``load_backbone_weights``, which adapts the
            first layer to ``in_chans``).
        in_chans: channels of the images it will see.
        seed: seed of random weights.

    Raises:
        ConfigError: no model given, both a checkpoint and other weights given, a checkpoint of another
            backbone or channel count, a file that is no checkpoint, or weights that do not fit.
        DataError: a damaged checkpoint.
    """
    if ckpt_path is None:
        if not backbone:
            raise ConfigError(
                "imgcls fewshot needs a model: --ckpt_path CHECKPOINT (of an imgcls run), or --backbone NAME with "
                "--pretrained false (random weights), true (ImageNet weights) or a weights file"
            )
        from_file = is_weights_path(pretrained)
        with torch.random.fork_rng(devices=[]):  # built on the CPU
            torch.manual_seed(seed)
            module, width = create_backbone(
                backbone, pretrained=bool(pretrained) and not from_file, in_chans=in_chans
            )
        if from_file:
            load_backbone_weights(module, pretrained)
        elif not pretrained:
            log.warning(
                "backbone %s has random weights (--pretrained false): a baseline, not a transfer", backbone
            )
        return FewShotBackbone(module, width, backbone, None, pretrained)

    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"--ckpt_path {path} does not exist; pass a checkpoint of an imgcls run "
            "(runs/<experiment>/version_N/checkpoints/best.ckpt)"
        )
    if pretrained is not False:
        raise ConfigError(
            f"--ckpt_path and --pretrained {str(pretrained).lower()} both give the weights; pass one of them"
        )
    checkpoint = read_checkpoint(path)
    hparams = checkpoint["hyper_parameters"]
    name = hparams["backbone"]
    if backbone and backbone != name:
        raise ConfigError(
            f"--ckpt_path {path} holds a {name} model, not --backbone {backbone}. Leave --backbone out (the "
            f"checkpoint names its own), or pass a checkpoint of a {backbone} run."
        )
    check_checkpoint_channels(
        int(hparams.get("in_chans", 3)),
        in_chans,
        f"--ckpt_path {path}",
        f"pass --backbone {name} --pretrained {path} instead",
    )
    model = classifier_from_checkpoint(checkpoint, path)
    # the head's first layer takes the backbone's features (create_head: Dropout has no width)
    width = next(m for m in model.head.modules() if isinstance(m, nn.Linear)).in_features
    return FewShotBackbone(model.backbone, width, name, str(path.resolve()))


def split_labels(datamodule: ImageDataModule, split: str) -> np.ndarray:
    """Labels of a split (``all``: train, val and test in that order); decodes nothing."""
    parts = _PARTS if split == "all" else (split,)
    return np.concatenate([datamodule.split_targets(part) for part in parts])


def split_dataset(datamodule: ImageDataModule, split: str) -> Dataset:
    """The images of a split, in the order of ``split_labels``."""
    datamodule.setup(_STAGES[split])
    if split == "all":
        return ConcatDataset([datamodule.datasets[part] for part in _PARTS])
    return datamodule.datasets[split]


def embed_images(
    backbone: nn.Module,
    transform: BatchTransform,
    dataset: Dataset,
    positions: np.ndarray,
    batch_size: int,
    num_workers: int = 0,
    features: bool = True,
    keep: np.ndarray | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Backbone features of the images at ``positions`` (eval mode, no augmentation), read once.

    Args:
        backbone: the feature extractor, on its device.
        transform: uint8 -> normalized float images.
        dataset: the split's images.
        positions: which images, in this order.
        batch_size: images per forward pass.
        num_workers: loader processes.
        features: compute features (False only reads the kept images).
        keep: a mask over ``positions`` of the uint8 images to return too (for fine-tuning).

    Returns:
        (len(positions), D) float features on the backbone's device (or None), and the kept uint8
        images on the CPU (or None).
    """
    device = next(backbone.parameters()).device
    loader = DataLoader(Subset(dataset, positions.tolist()), batch_size=batch_size, num_workers=num_workers)
    rows, kept, start = [], [], 0
    backbone.eval()
    with torch.no_grad():  # not inference_mode: the linear method trains on these tensors
        for batch in loader:
            images = batch["image"]
            if keep is not None:
                kept.append(images[torch.from_numpy(keep[start : start + len(images)])])
            if features:
                rows.append(backbone(transform(images.to(device), train=False)).float())
            start += len(images)
    return (torch.cat(rows) if rows else None), (torch.cat(kept) if kept else None)


@dataclass
class FewShotResult:
    """What a study measured.

    Attributes:
        summary: the contents of ``fewshot.json``.
        accuracies: per method, the accuracy of each episode it scored (episode 0 first).
        episodes: the drawn episodes.
        class_names: names of the split's labels.
    """

    summary: dict[str, Any]
    accuracies: dict[str, np.ndarray] = field(default_factory=dict)
    episodes: Episodes | None = None
    class_names: list[str] = field(default_factory=list)

    def episode_rows(self) -> list[dict[str, Any]]:
        """One row per method and episode: method, episode, classes (names joined by ';'), accuracy."""
        rows = []
        for method, values in self.accuracies.items():
            for row, accuracy in enumerate(values):
                classes = self.episodes.classes[row]
                rows.append(
                    {
                        "method": method,
                        "episode": int(self.episodes.indices[row]),
                        "classes": ";".join(self.class_names[c] for c in classes),
                        "accuracy": float(accuracy),
                    }
                )
        return rows

    def to_markdown(self) -> str:
        """The methods as a Markdown table: mean accuracy ± 95% CI half-width, episodes, seconds."""
        s = self.summary
        lines = [
            f"{s['n_way']}-way {s['k_shot']}-shot, {s['q_query']} queries per class: {s['dataset']} "
            f"({s['split']} split), {s['backbone']} from {s['model']}",
            "",
            "| method | accuracy (95% CI) | episodes | seconds |",
            "|---|---:|---:|---:|",
        ]
        for method, result in s["methods"].items():
            half = f" ± {result['ci95']:.2%}" if result["ci95"] is not None else ""
            lines.append(
                f"| {method} | {result['mean']:.2%}{half} | {result['episodes']} | {result['seconds']:.2f} |"
            )
        return "\n".join(lines)


class FewShotStudy:
    """N-way K-shot episodes from a datamodule's split, scored on a backbone's features.

    Args:
        data: the datamodule whose split the episodes come from.
        split: ``train``, ``val``, ``test`` or ``all`` (every image of the three).
        ckpt_path: an imgcls checkpoint whose backbone is evaluated.
        backbone: a backbone name, without --ckpt_path (or the checkpoint's own, to check it).
        pretrained: without --ckpt_path: false (random weights), true (the library's ImageNet weights,
            downloaded) or a weights file (state dict, timm/torchvision checkpoint, imgcls .ckpt).
        n_way: classes per episode.
        k_shot: support images per class.
        q_query: query images per class.
        episodes: episodes to draw; episode i depends only on seed and i.
        seed: seed of the episodes (and of random backbone weights and fine-tuning).
        methods: ``prototypes`` (nearest centroid of L2-normalized frozen features), ``linear``
            (logistic regression on them) and ``finetune`` (backbone and a new head trained per episode).
        linear_steps: full-batch SGD steps (momentum 0.9) of the linear method.
        linear_lr: its learning rate (features have norm 1).
        linear_weight_decay: its L2 penalty on the weights.
        finetune_episodes: fine-tune only the first this many episodes (it is slow); null for all.
        finetune_epochs: passes over the support set per episode.
        finetune_lr: SGD learning rate of backbone and head.
        finetune_momentum: SGD momentum.
        finetune_weight_decay: SGD weight decay.
        finetune_batch_size: support images per step; null for the whole support set.
        finetune_augment: augmentation preset of the support images (``none``, ``flip``, ...).
        batch_size: images per forward pass when embedding; null for the datamodule's batch size.
        device: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``, ``cuda:1``...
    """

    def __init__(
        self,
        data: ImageDataModule,
        split: Split = "test",
        ckpt_path: str | None = None,
        backbone: str | None = None,
        pretrained: bool | str = False,
        n_way: int = 5,
        k_shot: int = 5,
        q_query: int = 15,
        episodes: int = 600,
        seed: int = 0,
        methods: Sequence[Method] = FROZEN_METHODS,
        linear_steps: int = 300,
        linear_lr: float = 1.0,
        linear_weight_decay: float = 1e-3,
        finetune_episodes: int | None = None,
        finetune_epochs: int = 20,
        finetune_lr: float = 0.01,
        finetune_momentum: float = 0.9,
        finetune_weight_decay: float = 0.0,
        finetune_batch_size: int | None = None,
        finetune_augment: str = "flip",
        batch_size: int | None = None,
        device: str = "auto",
    ) -> None:
        self.data = data
        self.split = split
        self.ckpt_path, self.backbone, self.pretrained = ckpt_path, backbone, pretrained
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        self.episodes, self.seed = episodes, seed
        self.methods = list(dict.fromkeys(methods))
        self.linear = {"steps": linear_steps, "lr": linear_lr, "weight_decay": linear_weight_decay}
        self.finetune_episodes = finetune_episodes
        self.finetune = {
            "epochs": finetune_epochs,
            "lr": finetune_lr,
            "momentum": finetune_momentum,
            "weight_decay": finetune_weight_decay,
            "batch_size": finetune_batch_size,
        }
        self.finetune_augment = finetune_augment
        self.batch_size = batch_size
        self.device = device
        if split not in _STAGES:
            raise ConfigError(f"--split must be one of {', '.join(_STAGES)}, got {split!r}")
        if not self.methods:
            raise ConfigError("--methods is empty; choose some of prototypes, linear, finetune")
        positive = {"episodes": episodes, "linear_steps": linear_steps, "finetune_epochs": finetune_epochs}
        positive |= {"finetune_episodes": finetune_episodes, "batch_size": batch_size}
        for name, value in positive.items():
            if value is not None and value < 1:
                raise ConfigError(f"--{name} must be 1 or more, got {value}")
        if finetune_batch_size is not None and finetune_batch_size < 2:
            raise ConfigError(
                f"--finetune_batch_size must be 2 or more (batch norm needs 2 images), got {finetune_batch_size}"
            )
        check_augmentation(finetune_augment, "--finetune_augment")

    def _device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            return torch.device(self.device)
        except RuntimeError as err:
            raise ConfigError(f"--device {self.device!r} is not a device: {err}") from None

    def run(self) -> FewShotResult:
        """Draw the episodes, embed their images, score every method."""
        data = self.data
        data.prepare_data()
        labels = split_labels(data, self.split)
        class_names = [str(name) for name in data.class_names]
        # the episodes are checked against the labels before any model is built or image decoded
        sampler = EpisodeSampler(
            labels, self.n_way, self.k_shot, self.q_query, self.seed, class_names, self.split
        )
        drawn = sampler.sample(self.episodes)
        model = load_backbone(self.ckpt_path, self.backbone, self.pretrained, data.in_chans, self.seed)
        device = self._device()
        backbone = model.module.to(device).eval()
        mean, std = data.normalization
        transform = BatchTransform(self.finetune_augment, mean, std, data.in_chans, data.max_translate_px)

        frozen = [m for m in self.methods if m in FROZEN_METHODS]
        tuned = (
            drawn[: min(self.finetune_episodes or len(drawn), len(drawn))]
            if "finetune" in self.methods
            else None
        )
        positions = drawn.positions if frozen else tuned.positions
        keep = np.isin(positions, tuned.positions) if tuned is not None else None
        dataset = split_dataset(data, self.split)
        log.info(
            "embedding %d images of the %s split with %s (%s) on %s",
            len(positions),
            self.split,
            model.backbone,
            model.source,
            device,
        )
        started = time.perf_counter()
        features, images = embed_images(
            backbone,
            transform,
            dataset,
            positions,
            self.batch_size or data.batch_size,
            data.num_workers,
            features=bool(frozen),
            keep=keep,
        )
        extraction_seconds = time.perf_counter() - started
        log.info("embedded %d images in %.1f s", len(positions), extraction_seconds)

        accuracies: dict[str, np.ndarray] = {}
        seconds: dict[str, float] = {}
        for method in self.methods:
            started = time.perf_counter()
            if method == "finetune":
                kept = positions[keep]
                accuracies[method] = self._finetune(model, backbone, transform, tuned, kept, images)
            else:
                rows = Episodes(
                    drawn.indices,
                    drawn.classes,
                    np.searchsorted(positions, drawn.support),
                    np.searchsorted(positions, drawn.query),
                )
                accuracies[method] = self._score_frozen(method, features, rows)
            seconds[method] = time.perf_counter() - started
            log.info("%s: %d episodes in %.2f s", method, len(accuracies[method]), seconds[method])

        summary = {
            **dataset_info(data),
            "split": self.split,
            "split_images": len(labels),
            "image_size": data.image_size,
            "classes": len(np.unique(labels)),
            "eligible_classes": len(sampler.eligible_classes),
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            "q_query": self.q_query,
            "episodes": self.episodes,
            "seed": self.seed,
            "backbone": model.backbone,
            "checkpoint": model.checkpoint,
            "pretrained": model.pretrained,
            "model": model.source,
            "feature_dim": model.num_features,
            "device": str(device),
            "images_embedded": len(positions),
            "extraction_seconds": round(extraction_seconds, 3),
            "methods": {
                method: {**summarize_accuracies(values), "seconds": round(seconds[method], 3)}
                for method, values in accuracies.items()
            },
        }
        summary.pop("split_sizes", None)  # the datamodule's train/val/test sizes; split_images says ours
        return FewShotResult(summary, accuracies, drawn, class_names)

    def _score_frozen(self, method: str, features: torch.Tensor, rows: Episodes) -> np.ndarray:
        """Accuracy of each episode (rows index ``features``), a chunk of episodes at a time."""
        n, k, q = self.n_way, self.k_shot, self.q_query
        labels = query_labels(n, q, features.device)
        chunk = max(1, EPISODE_CHUNK_ELEMENTS // (n * (k + q) * features.shape[1]))
        scores = []
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            support = features[torch.from_numpy(part.support).to(features.device)]
            query = features[torch.from_numpy(part.query).to(features.device)].flatten(1, 2)
            if method == "prototypes":
                logits = classify_prototypes(support, query)
            else:
                logits = classify_linear(support, query, **self.linear)
            scores.append(episode_accuracy(logits, labels).cpu())
        return torch.cat(scores).numpy()

    def _finetune(
        self,
        model: FewShotBackbone,
        backbone: nn.Module,
        transform: BatchTransform,
        episodes: Episodes,
        positions: np.ndarray,
        images: torch.Tensor,
    ) -> np.ndarray:
        """Fine-tune a copy of the backbone on each episode's support images; query accuracies."""
        scores = []
        report_every = max(1, len(episodes) // 10)
        for row in range(len(episodes)):
            support = images[torch.from_numpy(np.searchsorted(positions, episodes.support[row]))]
            query = images[torch.from_numpy(np.searchsorted(positions, episodes.query[row]))]
            number = int(episodes.indices[row])
            # a seed of its own per episode: the same result whichever episodes run, in any order
            seed = int(np.random.default_rng([self.seed, number, 1]).integers(2**62))
            scores.append(
                finetune_episode(
                    backbone,
                    model.num_features,
                    support,
                    query,
                    self.n_way,
                    transform,
                    eval_batch_size=self.batch_size or self.data.batch_size,
                    seed=seed,
                    **self.finetune,
                )
            )
            if (row + 1) % report_every == 0 or row + 1 == len(episodes):
                log.info(
                    "finetune: %d/%d episodes, mean accuracy %.2f%%",
                    row + 1,
                    len(episodes),
                    100 * float(np.mean(scores)),
                )
        return np.asarray(scores)
