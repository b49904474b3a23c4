"""An exponential moving average of the weights, validated, checkpointed and tested as the model.

Lightning's ``WeightAveraging`` keeps the average (``torch.optim.swa_utils.AveragedModel``), swaps it in
for every validation, writes it as the checkpoint's ``state_dict`` (the trained weights go under
``current_model_state``, so a resumed fit goes on from them) and leaves it in the model when fit ends.
This subclass adds what a short from-scratch run needs:

- a warm-up of the decay, ``min(decay, (1 + n) / (10 + n))`` after n updates, so that the random
  weights of step 0 are forgotten within the first epoch instead of weighing on the average for
  thousands of steps;
- batch-norm statistics recomputed for the averaged weights (``torch.optim.swa_utils.update_bn``) on
  the last ``bn_batches`` training batches before every validation: running statistics averaged
  alongside the weights belong to none of the weights they are averaged with;
- ``decay: null`` turns it off, so that the CLI can always declare it (``--ema.decay 0.999``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from torch import nn
from torch.optim.swa_utils import update_bn

from imgcls.errors import ConfigError


def ema_with_warmup(decay: float):
    """``multi_avg_fn`` of ``AveragedModel``: EMA whose decay ramps up as ``(1 + n) / (10 + n)``."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        if not averaged[
            0
        ].is_floating_point():  # integer buffers such as num_batches_tracked: the newest value
            torch._foreach_copy_(averaged, current)
            return
        # the decay stays a tensor on the weights' device: a Python number would wait for the GPU every step
        steps = num_averaged.to(averaged[0].dtype)
        weight = 1.0 - torch.clamp((1.0 + steps) / (10.0 + steps), max=decay)
        torch._foreach_lerp_(averaged, current, [weight] * len(averaged))

    return update


class EMA(WeightAveraging):
    """Exponential moving average of the weights, used for validation, checkpoints and test.

    Args:
        decay: weight of the average at each update once warmed up (0.999: a horizon of about 1,000
            updates); None turns the average off.
        every_n_steps: update the average after every n-th optimizer step.
        bn_batches: recompute batch-norm statistics for the averaged weights on this many of the last
            training batches before each validation; 0 keeps the averaged running statistics.
    """

    def __init__(self, decay: float | None = None, every_n_steps: int = 1, bn_batches: int = 16) -> None:
        if decay is not None and not 0.0 < decay < 1.0:
            raise ConfigError(
                f"ema.decay must be between 0 and 1 (0.999 is usual) or null for off, got {decay}"
            )
        if every_n_steps < 1 or bn_batches < 0:
            raise ConfigError(
                f"ema.every_n_steps must be >= 1 and ema.bn_batches >= 0, got {every_n_steps} and {bn_batches}"
            )
        super().__init__(use_buffers=True, multi_avg_fn=ema_with_warmup(decay) if decay else None)
        self.decay = decay
        self.every_n_steps = every_n_steps
        self.bn_batches = bn_batches
        self._recent: deque[torch.Tensor] = deque(maxlen=max(bn_batches, 1))
        self._keep_batches = False

    @property
    def enabled(self) -> bool:
        return self.decay is not None

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx % self.every_n_steps == 0

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.enabled:
            super().setup(trainer, pl_module, stage)
            self._keep_batches = stage == "fit" and self.bn_batches > 0 and _has_batch_norm(pl_module)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._average_model is None:
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._keep_batches:
            self._recent.append(batch["image"].detach())

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._average_model is not None:
            super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._average_model is not None:
            super().on_train_end(trainer, pl_module)
            self._recent.clear()

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)
        if self._average_model is not None and self._recent and not trainer.sanity_checking:
            # the averaged weights are in the model now; what update_bn computes goes back into the
            # average at the swap after validation
            update_bn(list(self._recent), pl_module)

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average_model is not None:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # outside fit (test, predict) the checkpoint's state_dict already holds the averaged weights
        if self._average_model is not None:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def _has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
