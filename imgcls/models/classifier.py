"""``ImageClassifier``: a timm or torchvision backbone, a replaceable head, one shared step."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from torchvision.transforms import v2

from imgcls.errors import ConfigError
from imgcls.models.backbones import create_backbone, first_conv_name, is_weights_path
from imgcls.models.heads import create_head
from imgcls.models.weights import load_backbone_weights

log = logging.getLogger(__name__)
TtaMode = Literal["none", "hflip", "dihedral", "flip_translate"]
TTA_MODES = get_args(TtaMode)
# scheduler arguments torch takes as one learning rate for all parameter groups or as one per group
# (OneCycleLR's max_lr, CyclicLR's base_lr and max_lr, ReduceLROnPlateau's min_lr)
PER_GROUP_LR_ARGUMENTS = ("max_lr", "base_lr", "min_lr")


def tta_views(images: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The views of a batch that test-time augmentation averages over (weights: ``tta_weights``).

    ``hflip``: the images and their mirror. ``dihedral``: the 8 flips and quarter turns, for views
    from above (satellite, aerial, microscopy) that have no up; square images only. ``flip_translate``
    (airbench's): the images and their mirror, and both again shifted one pixel up-left and one pixel
    down-right (edges reflected).
    """
    if mode == "none":
        return [images]
    if mode == "hflip":
        return [images, images.flip(-1)]
    if mode == "flip_translate":
        height, width = images.shape[-2:]
        padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
        shifted = [padded[..., :height, :width], padded[..., 2:, 2:]]
        return [view for image in (images, *shifted) for view in (image, image.flip(-1))]
    height, width = images.shape[-2:]
    if height != width:
        raise ConfigError(
            f"model.test_time_augmentation dihedral turns images by quarter turns and needs square images, "
            f"got {height}x{width}; use hflip, or set data.image_size to one number"
        )
    turns = [images.rot90(k, dims=(-2, -1)) for k in range(4)]
    return turns + [turn.flip(-1) for turn in turns]


def tta_weights(mode: str) -> list[float] | None:
    """The weight of each of ``tta_views``'s views; None for equal weights."""
    # airbench's weighting: the unshifted pair counts as much as the two shifted pairs together
    return [0.25, 0.25, 0.125, 0.125, 0.125, 0.125] if mode == "flip_translate" else None


def tta_probabilities(
    classify: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, mode: str
) -> torch.Tensor:
    """Class probabilities of ``images`` (float32), averaged over the views of ``mode``."""
    views = tta_views(images, mode)
    if len(views) == 1:
        return classify(images).float().softmax(dim=1)
    probabilities = torch.stack([classify(view).float().softmax(dim=1) for view in views])
    weights = tta_weights(mode)
    if weights is None:
        return probabilities.mean(dim=0)
    return torch.einsum("v,vbc->bc", probabilities.new_tensor(weights), probabilities)


def batch_mix(num_classes: int, mixup_alpha: float, cutmix_alpha: float) -> Callable | None:
    """torchvision's MixUp and/or CutMix of a training batch (one of them per batch when both); None when off."""
    mixes = [
        mix(alpha=alpha, num_classes=num_classes)
        for mix, alpha in ((v2.MixUp, mixup_alpha), (v2.CutMix, cutmix_alpha))
        if alpha > 0
    ]
    if not mixes:
        return None
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)


def monitor_mode(monitor: str) -> str:
    """``min`` for losses and errors, ``max`` for everything else (accuracies, F1)."""
    return "min" if "loss" in monitor or "err" in monitor else "max"


def check_checkpoint_channels(trained: int, data: int, checkpoint: str, adapted: str) -> None:
    """Refuse a checkpoint trained on images of another channel count than the data's, naming the fix.

    Args:
        trained: channels the checkpoint's first layer takes.
        data: channels of the data's images.
        checkpoint: the checkpoint as the message names it (``--ckpt_path PATH``).
        adapted: the options that load its weights with the first layer adapted instead.

    Raises:
        ConfigError: the counts differ.
    """
    if trained != data:
        raise ConfigError(
            f"{checkpoint} expects {trained}-channel images but the data has {data}. Use a checkpoint trained "
            f"on {data}-channel data, or {adapted}, which adapts the first layer to {data}-channel images."
        )


class ImageClassifier(LightningModule):
    """Image classification with any timm or torchvision backbone.

    Args:
        backbone: timm model name (``resnet50``), ``torchvision/<builder>`` (``torchvision/googlenet``) or
            one of imgcls's own networks (``imgcls/airbench``).
        num_classes: number of classes; linked from the datamodule.
        in_chans: input channels; linked from the datamodule.
        class_names: class names in label order; linked from the datamodule, kept for reports.
        pretrained: False; True for the library's ImageNet weights (downloaded); or a path to a local
            weights file (state dict, timm/torchvision checkpoint, imgcls ``.ckpt``).
        backbone_kwargs: extra builder arguments (``{"width_mult": 0.5}`` for torchvision MobileNet-V2).
        activation: replace every ReLU of the backbone (``leaky_relu``).
        stem_pool: false drops the max-pool after the first convolution of ResNet and ShuffleNet
            backbones (feature maps of twice the side for small images, about 4x the compute).
        head_hidden: widths of hidden layers of an MLP head; empty for a linear head.
        head_activation: activation between MLP head layers.
        head_dropout: dropout of the head.
        freeze_backbone: train the head only; the backbone's batch-norm statistics stay frozen too.
        head_lr_multiplier: the head's learning rate is the optimizer's times this, through the whole
            schedule: a scheduler's ``max_lr``, ``base_lr`` or ``min_lr`` given as one number is scaled per
            parameter group; a scheduler that would still undo the ratio is refused.
        optimizer: optimizer class and arguments (``class_path``/``init_args`` in YAML).
        lr_scheduler: optional scheduler; ``ReduceLROnPlateau`` follows ``monitor``. A ``OneCycleLR``
            without ``total_steps`` (and without ``epochs``) gets the run's length: its optimizer steps
            with ``scheduler_interval: step``, its epochs + 1 otherwise (so the last epoch still learns).
        scheduler_interval: ``epoch`` or ``step``: when the scheduler steps (``ReduceLROnPlateau``
            always steps per epoch, after validation).
        monitor: the metric that early stopping, checkpointing and ReduceLROnPlateau follow.
        label_smoothing: cross-entropy label smoothing.
        channels_last: keep weights and images in channels-last memory order (faster convolutions on
            GPUs with tensor cores and on recent CPUs).
        compile: compile the forward pass with ``torch.compile`` (slower start, faster steps).
        test_time_augmentation: ``test`` and ``predict`` average the class probabilities over views
            of each image: ``none``, ``hflip`` (2 views), ``dihedral`` (the 8 flips and quarter
            turns; square images) or ``flip_translate`` (airbench's 6 views: the images, shifted one
            pixel up-left and down-right, each with its mirror). It costs one forward pass per view. It is not saved with the
            hyperparameters, so ``imgcls test --model.test_time_augmentation dihedral`` applies to
            any checkpoint, and its report goes to a ``test-tta-<mode>`` folder of its own.
        data_init: a fresh ``fit`` first shows this many training images (unaugmented) to a backbone
            that sets itself from data (``imgcls/airbench`` whitens its first layer with them); 0 skips it.
        mixup_alpha: MixUp (torchvision's ``v2.MixUp``) of each training batch with this Beta(alpha, alpha)
            mixing weight; 0 turns it off. The loss takes the mixed soft labels, training accuracy the
            larger of the two.
        cutmix_alpha: CutMix (``v2.CutMix``) likewise; with both above 0, each batch gets one of the two.
        filter_norm: before every optimizer step, rescale each trainable convolution's filters to a
            Frobenius norm of sqrt(output channels), as airbench's Muon does. With batch norm after each
            convolution the network computes the same function, and the steps keep their size relative to
            the weights instead of shrinking as the weights grow.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        num_classes: int = 10,
        in_chans: int = 3,
        class_names: list[str] | None = None,
        pretrained: bool | str = False,
        backbone_kwargs: dict[str, Any] | None = None,
        activation: str | None = None,
        stem_pool: bool = True,
        head_hidden: list[int] | None = None,
        head_activation: str = "relu",
        head_dropout: float = 0.0,
        freeze_backbone: bool = False,
        head_lr_multiplier: float = 1.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: str = "epoch",
        monitor: str = "val_loss",
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
        test_time_augmentation: TtaMode = "none",
        data_init: int = 0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        filter_norm: bool = False,
    ) -> None:
        super().__init__()
        # LightningCLI lays a checkpoint's hyperparameters over the command line: an evaluation
        # setting kept among them could not be changed for an existing checkpoint
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler", "test_time_augmentation"])
        if class_names is not None and len(class_names) != num_classes:
            raise ConfigError(
                f"model.num_classes is {num_classes} but {len(class_names)} class names were given"
            )
        if scheduler_interval not in ("epoch", "step"):
            raise ConfigError(
                f"model.scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        if test_time_augmentation not in TTA_MODES:
            raise ConfigError(
                f"model.test_time_augmentation must be one of {', '.join(TTA_MODES)}, got {test_time_augmentation!r}"
            )
        for name, alpha in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if alpha < 0:
                raise ConfigError(f"model.{name} must be 0 (off) or more, got {alpha}")
        if data_init < 0:
            raise ConfigError(f"model.data_init is a number of images, 0 or more; got {data_init}")
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.test_time_augmentation = test_time_augmentation
        self._stepped_plateaus: set[int] = set()
        from_file = is_weights_path(pretrained)
        self.backbone, num_features = create_backbone(
            backbone,
            pretrained=bool(pretrained) and not from_file,
            in_chans=in_chans,
            activation=activation,
            stem_pool=stem_pool,
            **(backbone_kwargs or {}),
        )
        if from_file:
            load_backbone_weights(self.backbone, pretrained)
        self.head = create_head(num_features, num_classes, head_hidden or (), head_activation, head_dropout)
        if data_init and not callable(getattr(self.backbone, "init_from_images", None)):
            raise ConfigError(
                f"model.data_init sets a backbone from training images, but {backbone} has no data-dependent "
                "initialisation (imgcls/airbench has); set model.data_init to 0"
            )
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        self.batch_mix = batch_mix(num_classes, mixup_alpha, cutmix_alpha)
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        self.train_metrics = MetricCollection(
            {"acc": MulticlassAccuracy(num_classes, average="micro")}, prefix="train_"
        )
        evaluation = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "acc_macro": MulticlassAccuracy(num_classes, average="macro"),
            }
        )
        self.val_metrics = evaluation.clone(prefix="val_")
        self.test_metrics = evaluation.clone(prefix="test_")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.to(memory_format=torch.channels_last)
        # compiling a function, not the modules, keeps state-dict keys (and checkpoints) unchanged
        self._logits = torch.compile(self._compute_logits) if compile else self._compute_logits

    @property
    def monitor_mode(self) -> str:
        return monitor_mode(self.hparams.monitor)

    def on_fit_start(self) -> None:
        # said here, not at construction: test, predict, validate and a resumed fit load a checkpoint's
        # weights next, so only a fresh fit really trains from random weights
        fresh = self.trainer.ckpt_path is None
        if not self.hparams.pretrained and fresh:
            log.info(
                "backbone %s starts from random weights (model.pretrained is false)", self.hparams.backbone
            )
        if self.hparams.data_init and fresh:
            self._init_from_data(self.hparams.data_init)

    def _init_from_data(self, count: int) -> None:
        """Show the backbone ``count`` training images as the validation transform prepares them."""
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "evaluation_batch"):
            raise ConfigError("model.data_init needs an imgcls datamodule to take the training images from")
        images, seen = [], 0
        for batch in datamodule.train_dataloader():
            batch = datamodule.evaluation_batch(batch, self.device)
            images.append(batch["image"][: count - seen])
            seen += len(images[-1])
            if seen >= count:
                break
        self.backbone.init_from_images(torch.cat(images))
        log.info("initialised %s from %d training images (model.data_init)", self.hparams.backbone, seen)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self.hparams.filter_norm:
            return
        with torch.no_grad():
            for module in self.backbone.modules():
                if isinstance(module, nn.Conv2d) and module.weight.requires_grad:
                    weight = module.weight
                    weight.mul_(weight.shape[0] ** 0.5 / weight.norm().clamp_min(1e-12))

    def on_validation_epoch_end(self) -> None:
        # Lightning steps ReduceLROnPlateau only after the epoch's checkpoints are saved, so last.ckpt
        # held the scheduler and learning rate of before this epoch's metric, and a resumed run trained
        # on at the old rate. It is stepped here instead: after validation, before the checkpoints.
        trainer = self.trainer
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or not trainer.is_last_batch:
            return
        for config in trainer.lr_scheduler_configs:
            due = (trainer.current_epoch + 1) % config.frequency == 0
            value = trainer.callback_metrics.get(config.monitor) if config.monitor else None
            if config.reduce_on_plateau and config.interval == "epoch" and due and value is not None:
                config.scheduler.step(value)
                self._stepped_plateaus.add(id(config.scheduler))

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        if id(scheduler) in self._stepped_plateaus:  # already stepped after this epoch's validation
            self._stepped_plateaus.discard(id(scheduler))
            return
        super().lr_scheduler_step(scheduler, metric)

    def _compute_logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._logits(images.contiguous(memory_format=self.memory_format))

    def evaluate(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for ``test`` and ``predict``: with test-time augmentation, the log of the class
        probabilities averaged over the views (their softmax is that average)."""
        if self.test_time_augmentation == "none":
            return self(images)
        probs = tta_probabilities(self, images, self.test_time_augmentation)
        # a probability that underflowed to 0 would make the label-smoothed loss infinite
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()

    def train(self, mode: bool = True) -> ImageClassifier:
        super().train(mode)
        if self.hparams.freeze_backbone:
            self.backbone.eval()  # frozen batch-norm statistics, no dropout in the frozen part
        return self

    def _shared_step(self, batch: dict[str, Any], stage: str) -> dict[str, torch.Tensor]:
        images, labels = batch["image"], batch["label"]
        targets = labels
        if stage == "train" and self.batch_mix is not None:
            images, targets = self.batch_mix(images, labels)  # soft labels (B, classes)
            labels = targets.argmax(dim=1)
        logits = self.evaluate(images) if stage == "test" else self(images)
        loss = F.cross_entropy(logits, targets, label_smoothing=self.hparams.label_smoothing)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(logits, labels)
        training = stage == "train"
        self.log(
            f"{stage}_loss",
            loss,
            on_step=training,
            on_epoch=True,
            prog_bar=True,
            sync_dist=not training,
            batch_size=len(labels),
        )
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)
        return {"loss": loss, "logits": logits.detach()}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "test")

    def predict_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, torch.Tensor]:
        probs = self.evaluate(batch["image"]).softmax(dim=1)
        return {"probs": probs, "label": batch["label"], "index": batch["index"]}

    # --- optimization ---------------------------------------------------------------------------

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Backbone and head parameter groups; the head's learning rate is scaled later."""
        groups = []
        if not self.hparams.freeze_backbone:
            groups.append(
                {"params": [p for p in self.backbone.parameters() if p.requires_grad], "name": "backbone"}
            )
        groups.append({"params": list(self.head.parameters()), "name": "head"})
        return groups

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameter_groups())
        multiplier = self.hparams.head_lr_multiplier
        scales = [multiplier if group["name"] == "head" else 1.0 for group in optimizer.param_groups]
        # the scaled lr becomes the group's own: schedulers take it as the group's initial_lr
        for group, scale in zip(optimizer.param_groups, scales, strict=True):
            group["lr"] = group["lr"] * scale
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(
            optimizer, **self._run_length_arguments(), **self._per_group_lr_arguments(scales)
        )
        self._check_lr_scales(optimizer, scheduler)
        if isinstance(scheduler, ReduceLROnPlateau):
            if scheduler.mode != self.monitor_mode:
                raise ConfigError(
                    f"ReduceLROnPlateau has mode {scheduler.mode!r} but model.monitor {self.hparams.monitor!r} needs "
                    f"{self.monitor_mode!r}; set the scheduler's mode to {self.monitor_mode!r}"
                )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": self.hparams.monitor},
            }
        interval = self.hparams.scheduler_interval
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    def _per_group_lr_arguments(self, scales: list[float]) -> dict[str, list[float]]:
        """The scheduler's learning rates configured as one number, as one per group, scaled."""
        configured = getattr(self.scheduler_factory, "keywords", {})
        if all(scale == 1 for scale in scales):
            return {}
        return {
            name: [value * scale for scale in scales]
            for name, value in configured.items()
            if name in PER_GROUP_LR_ARGUMENTS
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        }

    def _check_lr_scales(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """Refuse a scheduler that sets, or floors, the head's and backbone's rates off their ratio."""
        multiplier = self.hparams.head_lr_multiplier
        names = [group["name"] for group in optimizer.param_groups]
        if multiplier == 1 or "backbone" not in names:
            return
        head, backbone = names.index("head"), names.index("backbone")
        lrs = [float(group["lr"]) for group in optimizer.param_groups]
        scheduler_name = type(scheduler).__name__
        if not math.isclose(lrs[head], lrs[backbone] * multiplier, rel_tol=1e-6):
            raise ConfigError(
                f"{scheduler_name} set the head's learning rate to {lrs[head]:g} and the backbone's to "
                f"{lrs[backbone]:g}, undoing model.head_lr_multiplier {multiplier:g}. Configure the scheduler "
                f"with class_path/init_args (in Python, functools.partial) so that imgcls scales its "
                f"{', '.join(PER_GROUP_LR_ARGUMENTS)} per parameter group, give them as lists [backbone, head], "
                "or set model.head_lr_multiplier to 1."
            )
        # a floor shared by the groups brings head and backbone to one rate at the end of the schedule
        if hasattr(scheduler, "min_lrs"):  # ReduceLROnPlateau
            floors, fix = scheduler.min_lrs, "give min_lr as a list [backbone, head]"
        else:  # the cosine schedules
            floors, fix = [getattr(scheduler, "eta_min", 0.0)] * len(names), "set eta_min to 0"
        if not math.isclose(floors[head], floors[backbone] * multiplier, rel_tol=1e-6):
            raise ConfigError(
                f"{scheduler_name} floors the head's learning rate at {floors[head]:g} and the backbone's at "
                f"{floors[backbone]:g}, so they end the schedule off model.head_lr_multiplier "
                f"{multiplier:g}; {fix}, or set model.head_lr_multiplier to 1."
            )

    def _run_length_arguments(self) -> dict[str, int]:
        """``total_steps`` for a one-cycle schedule left without a length: the steps this run takes."""
        configured = getattr(self.scheduler_factory, "keywords", {})
        if "total_steps" not in configured or configured["total_steps"] is not None:
            return {}
        if configured.get("epochs") is not None:
            return {}
        if self.hparams.scheduler_interval == "step":
            total = self.trainer.estimated_stepping_batches
            unit = "optimizer steps (trainer.estimated_stepping_batches)"
        else:
            # one more than the epochs: the schedule's last value (almost 0) is never trained with
            total = self.trainer.max_epochs + 1 if self.trainer.max_epochs not in (None, -1) else None
            unit = "= trainer.max_epochs + 1"
        if total is None or total < 0 or total == float("inf"):
            raise ConfigError(
                "the learning-rate schedule needs the run's length; set trainer.max_epochs or the "
                "scheduler's total_steps"
            )
        log.info("scheduler total_steps = %d, %s", total, unit)
        return {"total_steps": int(total)}

    # --- checkpoints ----------------------------------------------------------------------------

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, with the reason, a checkpoint made for another class or channel count."""
        state = checkpoint.get("state_dict", {})
        head_key = f"head.{len(self.head) - 1}.weight"
        if head_key in state and state[head_key].shape[0] != self.hparams.num_classes:
            raise ConfigError(
                f"the checkpoint predicts {state[head_key].shape[0]} classes but the data has "
                f"{self.hparams.num_classes}. Use a checkpoint trained on this dataset, or fine-tune from it with "
                "--model.pretrained CHECKPOINT (a new head is created) instead of --ckpt_path."
            )
        conv = first_conv_name(self.backbone)
        conv_key = f"backbone.{conv}.weight"
        if conv and conv_key in state:
            check_checkpoint_channels(
                state[conv_key].shape[1],
                self.hparams.in_chans,
                "the checkpoint",
                "fine-tune from it with --model.pretrained CHECKPOINT instead of --ckpt_path",
            )
