"""The signs of a training run going wrong, logged per step: the gradient norm and the dead features."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn


class TrainingHealth(Callback):
    """Log ``train_grad_norm`` and ``train_dead_features`` at every logged training step.

    ``train_grad_norm`` is the 2-norm of all gradients together, before the optimizer steps (a spike
    of orders of magnitude is the start of a divergence). ``train_dead_features`` is the share of the
    head's input features that are zero for every image of the batch: a ReLU network whose features
    all died outputs the same logits for every image, and its loss stays at ln(number of classes)
    however long it trains. Configured in YAML (``trainer.callbacks``) like any callback of its own.
    """

    def __init__(self) -> None:
        self._dead: torch.Tensor | None = None
        self._hook: Any = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        head = getattr(pl_module, "head", None)
        if isinstance(head, nn.Module):
            self._hook = head.register_forward_hook(self._record_dead)

    def _record_dead(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
        if module.training and inputs and inputs[0].dim() == 2 and len(inputs[0]) > 1:
            features = inputs[0].detach()
            self._dead = (features == 0).all(dim=0).float().mean()

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        grads = [p.grad.detach() for p in pl_module.parameters() if p.grad is not None]
        if grads:
            pl_module.log("train_grad_norm", nn.utils.get_total_norm(grads), on_step=True, on_epoch=False)
        if self._dead is not None:
            pl_module.log("train_dead_features", self._dead, on_step=True, on_epoch=False)
            self._dead = None

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
