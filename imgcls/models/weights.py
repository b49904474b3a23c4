"""Loading a local weights file into a backbone: the offline path for pretrained weights.

Accepted files: a plain state dict (``.pth``/``.pt``/``.bin`` or ``.safetensors``); a timm or torchvision checkpoint (``state_dict``/``model`` inside);
an imgcls/Lightning ``.ckpt`` (its ``backbone.*`` weights are used). Classifier weights that do not
belong to the backbone are dropped with a log line; a first convolution made for another channel
count is adapted; any other mismatch is an error, never a silent partial load.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from imgcls.errors import ConfigError
from imgcls.models.backbones import first_conv_name

log = logging.getLogger(__name__)

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")
_PREFIXES = ("module.", "model.", "_orig_mod.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file and return its tensors with wrapper prefixes removed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist; check model.pretrained")
    try:
        if path.suffix == ".safetensors":  # timm's and Hugging Face's format
            obj = safetensors.torch.load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(f"cannot read weights file {path}: {err}") from err
    for key in _WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{path} holds no state dict of tensors (found {type(obj).__name__})")
    state = dict(obj)
    if any(k.startswith("backbone.") for k in state):  # an imgcls checkpoint: keep the backbone only
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    return state


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a local weights file into ``backbone`` (see the module docstring for the rules)."""
    state = read_state_dict(path)
    own = backbone.state_dict()
    conv = first_conv_name(backbone)
    conv_key = f"{conv}.weight" if conv else None
    if conv_key in state and conv_key in own and state[conv_key].shape[1] != own[conv_key].shape[1]:
        log.info(
            "adapting %s of %s from %d to %d input channels",
            conv_key,
            path,
            state[conv_key].shape[1],
            own[conv_key].shape[1],
        )
        import timm  # 0.6 s to import: only when a checkpoint's first layer needs adapting

        state[conv_key] = timm.models.adapt_input_conv(own[conv_key].shape[1], state[conv_key])
    unused = sorted(k for k in state if k not in own)
    if unused:
        log.info(
            "ignoring %d weights of %s that the backbone has no place for (classifier heads): %s",
            len(unused),
            path,
            ", ".join(unused[:6]) + (" ..." if len(unused) > 6 else ""),
        )
    matched = {k: v for k, v in state.items() if k in own}
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in matched.items()
        if v.shape != own[k].shape
    ]
    if wrong:
        raise ConfigError(
            f"{path} does not fit this backbone: {len(wrong)} tensors differ in shape ({'; '.join(wrong[:3])}). "
            "Check that model.backbone names the architecture the file was trained with."
        )
    missing = sorted(k for k in own if k not in matched and not k.endswith("num_batches_tracked"))
    if missing:
        raise ConfigError(
            f"{path} lacks {len(missing)} weights of this backbone ({', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}). Check that model.backbone names the architecture the file "
            "was trained with."
        )
    backbone.load_state_dict(matched, strict=False)
    log.info("loaded %d backbone tensors from %s", len(matched), path)
