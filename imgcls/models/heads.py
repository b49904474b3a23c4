"""Classifier heads placed on a backbone's pooled features."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from imgcls.errors import ConfigError
from imgcls.models.backbones import ACTIVATIONS


def create_head(
    in_features: int,
    num_classes: int,
    hidden: Sequence[int] = (),
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """A linear head, or an MLP when ``hidden`` lists layer widths.

    Each hidden layer is Linear -> activation -> Dropout; the last layer maps to ``num_classes`` logits.
    With no hidden layers, ``dropout`` (if any) comes before the single Linear layer.
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"unknown model.head_activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}"
        )
    if not 0 <= dropout < 1:
        raise ConfigError(f"model.head_dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation](), nn.Dropout(dropout)]
        width = size
    if not hidden and dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
