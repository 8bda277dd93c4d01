"""VGG-style networks: VGG-nagadomi (CIFAR-10) and a small configurable VGG for 28x28 images."""
from __future__ import annotations

from typing import Sequence, Union

from torch import nn

from .registry import register_model

__all__ = ["vgg_features", "VGG", "vgg_nagadomi", "small_vgg"]

Layer = Union[int, str]


def vgg_features(in_channels: int, widths: Sequence[Layer], batch_norm: bool = True) -> nn.Sequential:
    """3x3 convolutions (padding 1) with optional BatchNorm and ReLU; ``"M"`` is a 2x2 max-pool.

    Args:
        in_channels: channels of the input image.
        widths: output channels per conv, ``"M"`` for a pooling layer, e.g. ``[16, 16, "M", 32]``.
        batch_norm: add BatchNorm2d after every convolution (bias dropped then).
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for item in widths:
        if item in ("M", "m"):
            layers.append(nn.MaxPool2d(2))
            continue
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise ValueError(f"widths entries must be positive ints or 'M', got {item!r}")
        layers.append(nn.Conv2d(channels, item, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        channels = item
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` (convs) -> ``pool`` -> ``classifier``; layer names stay stable for recipes."""

    def __init__(self, features: nn.Sequential, pool: nn.Module, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features, self.pool, self.classifier = features, pool, classifier

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def _last_width(features: nn.Sequential) -> int:
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("widths needs at least one convolution")
    return convs[-1].out_channels


@register_model("vgg_nagadomi", 32, "VGG-nagadomi for CIFAR-10: 3x3 convs 64,64,M,128,128,M,256x4,M, "
                "FC1024, FC1024, BN, dropout 0.5")
def vgg_nagadomi(in_channels: int = 3, num_classes: int = 10, input_size: int = 32,
                 batch_norm: bool = True, dropout: float = 0.5, hidden: int = 1024,
                 width: int = 64) -> VGG:
    """VGG-nagadomi (Yu et al. / Liu et al.'s CIFAR-10 model).

    Args:
        in_channels, num_classes: image channels and classes.
        input_size: image side; must be divisible by 8 (three 2x2 pools).
        batch_norm: BatchNorm after each conv and hidden FC layer.
        dropout: dropout probability before each hidden FC output.
        hidden: width of the two hidden FC layers.
        width: channels of the first block (64 in the paper; the others are 2x and 4x).
    """
    if input_size % 8:
        raise ValueError(f"vgg_nagadomi: input_size must be divisible by 8, got {input_size}")
    if width < 1:
        raise ValueError(f"vgg_nagadomi: width must be >= 1, got {width}")
    w2, w4 = 2 * width, 4 * width
    widths: list[Layer] = [width, width, "M", w2, w2, "M", w4, w4, w4, w4, "M"]
    side = input_size // 8

    def fc(inputs: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Linear(inputs, hidden, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        return layers + [nn.ReLU(inplace=True), nn.Dropout(dropout)]

    classifier = nn.Sequential(*fc(w4 * side * side), *fc(hidden), nn.Linear(hidden, num_classes))
    return VGG(vgg_features(in_channels, widths, batch_norm), nn.Flatten(), classifier)


@register_model("small_vgg", 28, "small VGG for 28x28 images: 3x3 convs 16,16,M,32,32,M,64, "
                "global average pool, FC (36k parameters)")
def small_vgg(in_channels: int = 1, num_classes: int = 10,
              widths: Sequence[Layer] = (16, 16, "M", 32, 32, "M", 64),
              batch_norm: bool = True, dropout: float = 0.0) -> VGG:
    """Small VGG-style net for (Fashion-)MNIST; any input size works (global average pool).

    Args:
        in_channels, num_classes: image channels and classes.
        widths: conv widths and ``"M"`` pools; the default costs 5.5M MACs per 28x28 image.
        batch_norm: BatchNorm after each conv.
        dropout: dropout before the final linear layer (0 disables).
    """
    features = vgg_features(in_channels, list(widths), batch_norm)
    classifier: list[nn.Module] = [nn.Flatten()]
    if dropout:
        classifier.append(nn.Dropout(dropout))
    classifier.append(nn.Linear(_last_width(features), num_classes))
    return VGG(features, nn.AdaptiveAvgPool2d(1), nn.Sequential(*classifier))
