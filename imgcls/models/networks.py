"""Networks of imgcls's own, built by name as ``imgcls/<name>`` beside timm's and torchvision's.

``imgcls/airbench``: the small VGG-like network of airbench (Jordan 2024, "94% on CIFAR-10 in 3.29
seconds on a single GPU"), the fastest published CIFAR-10 recipe: a frozen 2x2 convolution that
``init_from_images`` sets to whiten the data's patches, then three blocks of two 3x3 convolutions
(max-pooled, batch-normalised, GELU) and a global max-pool. It has no classifier: the classifier's
replaceable head sits on its pooled features, as on every other backbone.
"""

from __future__ import annotations

import torch
from torch import nn

from imgcls.errors import ConfigError

PREFIX = "imgcls/"


class _BatchNorm(nn.BatchNorm2d):
    """Batch norm with a frozen scale (only the shift learns) and fast-moving running statistics."""

    def __init__(self, channels: int, momentum: float) -> None:
        super().__init__(channels, eps=1e-12, momentum=momentum)
        self.weight.requires_grad = False


class _ConvGroup(nn.Module):
    """conv -> 2x2 max-pool -> batch norm -> GELU -> conv -> batch norm -> GELU."""

    def __init__(self, channels_in: int, channels_out: int, bn_momentum: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding="same", bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _BatchNorm(channels_out, bn_momentum)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding="same", bias=False)
        self.norm2 = _BatchNorm(channels_out, bn_momentum)
        self.activation = nn.GELU()
        for conv in (self.conv1, self.conv2):
            # identity on the first input channels: each block starts close to passing its input on
            nn.init.dirac_(conv.weight.data[: conv.in_channels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activation(self.norm1(self.pool(self.conv1(x))))
        return self.activation(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """airbench's CIFAR-10 network without its classifier.

    Args:
        in_chans: input channels.
        widths: output channels of the three blocks.
        whiten_kernel: side of the whitening convolution's patches; it has ``2 * in_chans * k * k``
            output channels (each whitened direction and its negative).
        whiten_stride: step between the whitened patches; 2 with the 2x2 kernel tiles the image, so
            every later layer runs at half the side (a quarter of the arithmetic) while the first layer
            still keeps all of each patch's pixels: EuroSAT's 64 px at CIFAR-10's cost.
        bn_momentum: running-statistics momentum of the batch norms (PyTorch's convention; airbench's
            0.6 is PyTorch's 0.4).
        feature_scale: the pooled features are multiplied by this; None divides them by their width,
            as airbench divides its logits.
    """

    def __init__(
        self,
        in_chans: int = 3,
        widths: tuple[int, int, int] = (64, 256, 256),
        whiten_kernel: int = 2,
        whiten_stride: int = 1,
        bn_momentum: float = 0.4,
        feature_scale: float | None = None,
    ) -> None:
        super().__init__()
        if len(widths) != 3:
            raise ConfigError(f"imgcls/airbench takes three block widths, got {list(widths)}")
        if whiten_stride < 1:
            raise ConfigError(f"imgcls/airbench's whiten_stride must be >= 1, got {whiten_stride}")
        whiten_width = 2 * in_chans * whiten_kernel**2
        self.whiten = nn.Conv2d(
            in_chans, whiten_width, whiten_kernel, stride=whiten_stride, padding=0, bias=True
        )
        self.whiten.weight.requires_grad = False
        blocks, width = [], whiten_width
        for out in widths:
            blocks.append(_ConvGroup(width, out, bn_momentum))
            width = out
        self.layers = nn.Sequential(nn.GELU(), *blocks)
        self.num_features = width
        self.feature_scale = 1.0 / width if feature_scale is None else feature_scale

    @torch.no_grad()
    def init_from_images(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening convolution from normalised training images (B, C, H, W).

        Its filters become the eigenvectors of the covariance of the images' k x k patches, each scaled by
        its eigenvalue's inverse square root, and their negatives: the first layer sees decorrelated,
        unit-variance input from the first step on.
        """
        channels, (kh, kw), (sh, sw) = images.shape[1], self.whiten.weight.shape[2:], self.whiten.stride
        if channels != self.whiten.in_channels:
            raise ConfigError(
                f"the whitening layer takes {self.whiten.in_channels}-channel images, got {channels}"
            )
        patches = (
            images.float().unfold(2, kh, sh).unfold(3, kw, sw).transpose(1, 3).reshape(-1, channels * kh * kw)
        )
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = eigenvectors.T.reshape(-1, channels, kh, kw) / torch.sqrt(
            eigenvalues.view(-1, 1, 1, 1) + eps
        )
        self.whiten.weight.copy_(torch.cat((filters, -filters)).to(self.whiten.weight))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.whiten(images))
        # max, not amax: compiled by inductor in bf16, amax's gradient comes out NaN (pytorch/pytorch#186799)
        return x.flatten(2).max(dim=2).values * self.feature_scale


NETWORKS: dict[str, type[nn.Module]] = {"airbench": AirbenchNet}


def network_names() -> list[str]:
    """Every ``imgcls/<name>`` that ``create_network`` builds."""
    return [PREFIX + name for name in NETWORKS]


def create_network(name: str, in_chans: int = 3, **kwargs) -> tuple[nn.Module, int]:
    """Build ``imgcls/<name>``; return it and its feature width."""
    bare = name.removeprefix(PREFIX)
    if bare not in NETWORKS:
        raise ConfigError(f"unknown backbone {name!r}; imgcls's own networks: {', '.join(network_names())}")
    try:
        model = NETWORKS[bare](in_chans=in_chans, **kwargs)
    except TypeError as err:
        raise ConfigError(f"model.backbone_kwargs do not fit {name}: {err}") from err
    return model, model.num_features
