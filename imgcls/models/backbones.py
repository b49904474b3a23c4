"""``create_backbone``: one call for timm and torchvision models, returning (module, feature width).

A backbone maps images to pooled features; the classifier head is never part of it. Names are timm
model names (``resnet18``), ``torchvision/<builder>`` (``torchvision/googlenet``) or imgcls's own
networks, ``imgcls/<name>`` (``imgcls/airbench``, ``imgcls.models.networks``).
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

# timm is imported inside the functions that build models: it takes 0.6 s, which every command
# (and --help) would pay at start-up
import torch
import torchvision
from torch import nn

from imgcls.errors import ConfigError
from imgcls.models import networks

log = logging.getLogger(__name__)

TORCHVISION_PREFIX = "torchvision/"
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "mish": nn.Mish,
    "tanh": nn.Tanh,
}


def available_backbones() -> list[str]:
    """Every name ``create_backbone`` accepts."""
    import timm

    return (
        timm.list_models()
        + [TORCHVISION_PREFIX + n for n in torchvision.models.list_models(torchvision.models)]
        + networks.network_names()
    )


def check_backbone_name(name: str) -> None:
    """Raise ``ConfigError`` with the closest valid names unless ``create_backbone`` knows ``name``."""
    import timm

    if name in networks.network_names():
        return
    valid = (
        torchvision.models.list_models(torchvision.models)
        if name.startswith(TORCHVISION_PREFIX)
        else timm.list_models()
    )
    bare = name.removeprefix(TORCHVISION_PREFIX)
    if bare in valid:
        return
    close = difflib.get_close_matches(name, available_backbones(), n=5, cutoff=0.6)
    hint = f" Closest valid names: {', '.join(close)}." if close else ""
    raise ConfigError(
        f"unknown backbone {name!r}.{hint} Use a timm model name (timm.list_models()), "
        "torchvision/<builder> (torchvision.models.list_models()) or one of imgcls's own: "
        f"{', '.join(networks.network_names())}."
    )


def _replace_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def first_conv_name(model: nn.Module) -> str | None:
    """Name of the first Conv2d: the layer whose weights depend on the input channels."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    return None


def _last_linear_name(model: nn.Module) -> str:
    name = None
    for child_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            name = child_name
    if name is None:
        raise ConfigError(f"cannot find the classifier layer of {type(model).__name__}: it has no nn.Linear")
    return name


def _create_torchvision(builder: str, pretrained: bool, **kwargs: Any) -> tuple[nn.Module, str]:
    """Build a torchvision classifier; return it and the name of its final Linear layer."""
    if builder in ("googlenet", "inception_v3"):
        # the auxiliary heads only matter for the original ImageNet recipe; imgcls trains one head
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("transform_input", pretrained)
        if not pretrained:
            kwargs.setdefault("init_weights", True)
    weights = "DEFAULT" if pretrained else None
    model = torchvision.models.get_model(builder, weights=weights, **kwargs)
    return model, _last_linear_name(model)


def adapt_first_conv(model: nn.Module, in_chans: int) -> None:
    """Give the first convolution ``in_chans`` input channels, keeping (adapted) pretrained weights."""
    import timm

    name = first_conv_name(model)
    if name is None:
        raise ConfigError(f"{type(model).__name__} has no Conv2d whose input channels could be changed")
    conv = model.get_submodule(name)
    if conv.in_channels == in_chans:
        return
    new = nn.Conv2d(
        in_chans,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
        conv.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(timm.models.adapt_input_conv(in_chans, conv.weight))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    _replace_module(model, name, new)


def replace_activation(model: nn.Module, activation: str) -> int:
    """Swap every ReLU module for ``activation``; return how many were swapped."""
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
    targets = [name for name, module in model.named_modules() if type(module) is nn.ReLU]
    for name in targets:
        new = ACTIVATIONS[activation]()
        if hasattr(new, "inplace"):
            new.inplace = True
        _replace_module(model, name, new)
    if not targets:
        raise ConfigError(
            f"{type(model).__name__} has no nn.ReLU modules to replace (it may call its activation as a function); "
            "choose another backbone or drop model.activation"
        )
    return len(targets)


def drop_stem_pool(model: nn.Module, name: str) -> None:
    """Replace the max-pool that follows the first convolution with an identity."""
    if not isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
        raise ConfigError(
            f"model.stem_pool: false drops the stem's max-pool (the 'maxpool' module of ResNet and ShuffleNet "
            f"backbones), but {name} has none; leave model.stem_pool at true for this backbone"
        )
    model.maxpool = nn.Identity()


def _weights_location(name: str) -> str:
    """Where the library itself looks for cached weights of ``name``, in words."""
    import timm

    if name.startswith(TORCHVISION_PREFIX):
        try:
            url = torchvision.models.get_model_weights(name.removeprefix(TORCHVISION_PREFIX)).DEFAULT.url
        except Exception:  # builders without registered weights
            return "download the weights elsewhere"
        cache = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        return f"download {url} elsewhere and put it at {cache}"
    hub_id = getattr(timm.models.get_pretrained_cfg(name), "hf_hub_id", None) if timm.is_model(name) else None
    where = f"the Hugging Face repo {hub_id}" if hub_id else "timm's weights"
    return (
        f"fetch {where} into the Hugging Face cache elsewhere and copy the cache over "
        "(with HF_HUB_OFFLINE=1 timm then skips its download retries)"
    )


def create_backbone(
    name: str,
    pretrained: bool = False,
    in_chans: int = 3,
    activation: str | None = None,
    stem_pool: bool = True,
    **kwargs: Any,
) -> tuple[nn.Module, int]:
    """Create a feature extractor and report its feature width.

    Args:
        name: timm model name, ``torchvision/<builder>`` or ``imgcls/<name>``.
        pretrained: load the library's ImageNet weights (needs internet or a filled cache). Local weight
            files are loaded by ``imgcls.models.weights.load_backbone_weights``.
        in_chans: input channels; pretrained first-layer weights are adapted when it is not 3.
        activation: replace every ReLU by this activation (``leaky_relu`` for the MNIST/CIFAR study).
        stem_pool: False drops the max-pool after the first convolution (ResNet and ShuffleNet families),
            so every later feature map has twice the side: the usual stem for 32-64 px images, at about
            4x the compute.
        **kwargs: passed to the builder (``width_mult`` for torchvision MobileNet, ``drop_rate`` for timm).

    Returns:
        The backbone, mapping (B, in_chans, H, W) images to (B, num_features), and num_features.
    """
    import timm

    check_backbone_name(name)
    try:
        if name.startswith(networks.PREFIX):
            if pretrained:
                raise ConfigError(
                    f"{name} has no published weights; train it, then load the checkpoint with "
                    "--model.pretrained PATH"
                )
            model, num_features = networks.create_network(name, in_chans=in_chans, **kwargs)
        elif name.startswith(TORCHVISION_PREFIX):
            model, classifier = _create_torchvision(
                name.removeprefix(TORCHVISION_PREFIX), pretrained, **kwargs
            )
            num_features = model.get_submodule(classifier).in_features
            _replace_module(model, classifier, nn.Identity())
            if in_chans != 3:
                adapt_first_conv(model, in_chans)
        else:
            model = timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_chans, **kwargs)
            num_features = model.num_features
    except Exception as err:  # download failures surface as many types (URLError, hub and HTTP errors)
        if not pretrained or isinstance(err, ConfigError):
            raise
        raise ConfigError(
            f"could not download pretrained weights for {name} ({type(err).__name__}: {err}). Without internet, "
            f"{_weights_location(name)}, or pass any local copy: --model.pretrained /path/to/weights.pth "
            "(a state dict, a timm/torchvision checkpoint or an imgcls .ckpt)."
        ) from err
    if not stem_pool:
        drop_stem_pool(model, name)
    if activation is not None:
        count = replace_activation(model, activation)
        log.info("replaced %d ReLU modules of %s with %s", count, name, activation)
    return model, int(num_features)


def is_weights_path(pretrained: bool | str | Path) -> bool:
    return isinstance(pretrained, (str, Path)) and not isinstance(pretrained, bool)
