"""Model summaries: parameters, GFLOPs per image, parameter and activation memory, layer table.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (one multiply-add counts as two FLOPs),
never from hand-written formulas, so every backbone timm or torchvision builds is counted the same way.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from imgcls.models.classifier import ImageClassifier

MB = 2**20
# ImageClassifier arguments that change the architecture (and so the summary); the rest only trains it
ARCHITECTURE_ARGS = (
    "backbone",
    "num_classes",
    "in_chans",
    "backbone_kwargs",
    "activation",
    "head_hidden",
    "head_activation",
    "head_dropout",
    "freeze_backbone",
)


@dataclass
class ModelSummary:
    """The numbers of one model at one input size (memory in MiB of float32 unless the model differs).

    Attributes:
        input_size: (channels, height, width) of one image.
        total_params: every parameter.
        trainable_params: parameters with ``requires_grad``.
        gflops: forward GFLOPs per image.
        param_mb: parameters and buffers.
        input_mb: one batch of inputs.
        forward_backward_mb: outputs of every leaf layer, twice (activations and their gradients):
            torchsummary's "forward/backward pass size".
        saved_activations_mb: tensors autograd actually keeps for the backward pass (parameters excluded).
        total_mb: input + forward/backward + parameters, torchsummary's "estimated total size".
        batch_size: images per batch the memory columns refer to.
        layers: per-layer rows (name, type, output shape, parameters) down to ``depth``.
    """

    input_size: tuple[int, int, int]
    total_params: int
    trainable_params: int
    gflops: float
    param_mb: float
    input_mb: float
    forward_backward_mb: float
    saved_activations_mb: float
    total_mb: float
    batch_size: int = 1
    layers: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self, layers: bool = False) -> dict[str, Any]:
        values = asdict(self)
        if not layers:
            values.pop("layers")
        return values

    def to_markdown(self, layers: bool = True) -> str:
        """The summary as Markdown: the layer table, then the totals (the torchsummary layout)."""
        lines = []
        if layers and self.layers:
            lines += ["| layer | type | output shape | parameters |", "|---|---|---|---:|"]
            for row in self.layers:
                lines.append(f"| {row['name']} | {row['type']} | {row['output_shape']} | {row['params']:,} |")
            lines.append("")
        c, h, w = self.input_size
        rows = [
            ("input size", f"{self.batch_size} x {c} x {h} x {w}"),
            ("total parameters", f"{self.total_params:,}"),
            ("trainable parameters", f"{self.trainable_params:,}"),
            ("non-trainable parameters", f"{self.total_params - self.trainable_params:,}"),
            ("GFLOPs per image (forward)", f"{self.gflops:.4g}"),
            ("input size (MB)", f"{self.input_mb:.2f}"),
            ("forward/backward pass size (MB)", f"{self.forward_backward_mb:.2f}"),
            ("activations saved for backward (MB)", f"{self.saved_activations_mb:.2f}"),
            ("parameter size (MB)", f"{self.param_mb:.2f}"),
            ("estimated total size (MB)", f"{self.total_mb:.2f}"),
        ]
        lines += ["| quantity | value |", "|---|---:|", *[f"| {k} | {v} |" for k, v in rows]]
        return "\n".join(lines)


def count_gflops(model: nn.Module, images: torch.Tensor) -> float:
    """Forward GFLOPs per image of ``model`` on ``images``, counted by ``FlopCounterMode``."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    return counter.get_total_flops() / images.shape[0] / 1e9


def _leaf_output_bytes(
    model: nn.Module, images: torch.Tensor, depth: int
) -> tuple[int, list[dict[str, Any]]]:
    """Bytes of every leaf module's outputs, and a layer table of modules at most ``depth`` deep."""
    total = 0
    layers: list[dict[str, Any]] = []
    pending: dict[str, list[int]] = {}
    handles = []

    def tensors(output: Any) -> list[torch.Tensor]:
        if isinstance(output, torch.Tensor):
            return [output]
        if isinstance(output, list | tuple):
            return [t for item in output for t in tensors(item)]
        if isinstance(output, dict):
            return [t for item in output.values() for t in tensors(item)]
        return []

    def count(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal total
        total += sum(t.numel() * t.element_size() for t in tensors(output))

    def reserve(name: str) -> Any:
        # a row per call, added before the children run so that the table reads top-down
        def hook(module: nn.Module, inputs: Any) -> None:
            params = sum(p.numel() for p in module.parameters())
            layers.append(
                {"name": name, "type": type(module).__name__, "output_shape": None, "params": params}
            )
            pending.setdefault(name, []).append(len(layers) - 1)

        return hook

    def fill(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            shapes = [list(t.shape) for t in tensors(output)]
            layers[pending[name].pop()]["output_shape"] = shapes[0] if len(shapes) == 1 else shapes

        return hook

    for name, module in model.named_modules():
        if name and not list(module.children()):
            handles.append(module.register_forward_hook(count))
        if name and name.count(".") < depth:
            handles.append(module.register_forward_pre_hook(reserve(name)))
            handles.append(module.register_forward_hook(fill(name)))
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return total, layers


def _saved_activation_bytes(model: nn.Module, images: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd saves for backward, leaving out parameters and buffers."""
    excluded = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = model(images)
    if output.requires_grad:
        output.float().sum().backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def summarize_model(
    model: nn.Module, input_size: tuple[int, int, int] | list[int], batch_size: int = 1, depth: int = 2
) -> ModelSummary:
    """Measure ``model`` at one input size on the CPU (or wherever its parameters are).

    Args:
        model: any module taking a (B, C, H, W) batch.
        input_size: (channels, height, width).
        batch_size: images per batch for the memory columns; GFLOPs are always per image.
        depth: module nesting depth of the layer table (1: the model's children).
    """
    input_size = tuple(int(v) for v in input_size)
    if len(input_size) != 3:
        raise ValueError(f"input_size is (channels, height, width), got {input_size}")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    images = torch.randn(batch_size, *input_size, device=device, dtype=dtype)
    was_training = model.training
    try:
        # eval: batch-norm running statistics stay untouched and dropout is off while measuring
        model.eval()
        gflops = count_gflops(model, images[:1])
        leaf_bytes, layers = _leaf_output_bytes(model, images, depth)
        # a training-mode copy: what backward keeps depends on the mode, but the real running statistics
        # must not move
        # (at two images, scaled: batch norm cannot train on one, and activations grow linearly with it)
        pair = torch.randn(2, *input_size, device=device, dtype=dtype)
        saved = _saved_activation_bytes(copy.deepcopy(model).train(), pair) * batch_size / 2
    finally:
        model.train(was_training)
    params = list(model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in params) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )
    input_bytes = images.numel() * images.element_size()
    return ModelSummary(
        input_size=input_size,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        gflops=gflops,
        param_mb=param_bytes / MB,
        input_mb=input_bytes / MB,
        forward_backward_mb=2 * leaf_bytes / MB,
        saved_activations_mb=saved / MB,
        total_mb=(input_bytes + 2 * leaf_bytes + param_bytes) / MB,
        batch_size=batch_size,
        layers=layers,
    )


def build_model(backbone: str, num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> nn.Module:
    """An untrained ``ImageClassifier`` with the given architecture arguments (no weights downloaded).

    Only architecture arguments (``ARCHITECTURE_ARGS``) are used; others (optimizer, lr) are ignored.
    """
    arguments = {k: v for k, v in kwargs.items() if k in ARCHITECTURE_ARGS and v is not None}
    arguments.pop("class_names", None)
    return ImageClassifier(
        backbone=backbone, num_classes=num_classes, in_chans=in_chans, pretrained=False, **arguments
    )
