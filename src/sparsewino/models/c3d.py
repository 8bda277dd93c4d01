"""A small C3D-style 3-D CNN (Tran et al. 2015): 3x3x3 convolutions and 3-D max-pooling over clips."""
from __future__ import annotations

from typing import Sequence, Union

from torch import nn

from .registry import register_model
from .vgg import VGG

__all__ = ["c3d_features", "c3d_small"]

Layer = Union[int, str]


def c3d_features(in_channels: int, widths: Sequence[Layer], batch_norm: bool = True) -> nn.Sequential:
    """3x3x3 convolutions (padding 1) with optional BatchNorm3d and ReLU, and 3-D max-pools.

    Args:
        in_channels: channels of the input clip.
        widths: output channels per conv; ``"P"`` a 1x2x2 max-pool (space only, C3D's first
            pool), ``"M"`` a 2x2x2 max-pool; e.g. ``[16, "P", 32, "M", 64]``.
        batch_norm: add BatchNorm3d after every convolution (bias dropped then).
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for item in widths:
        if item in ("P", "p"):
            layers.append(nn.MaxPool3d((1, 2, 2)))
            continue
        if item in ("M", "m"):
            layers.append(nn.MaxPool3d(2))
            continue
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise ValueError(f"widths entries must be positive ints, 'P' or 'M', got {item!r}")
        layers.append(nn.Conv3d(channels, item, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm3d(item))
        layers.append(nn.ReLU(inplace=True))
        channels = item
    if not any(isinstance(m, nn.Conv3d) for m in layers):
        raise ValueError(f"widths needs at least one convolution, got {list(widths)!r}")
    return nn.Sequential(*layers)


@register_model("c3d_small", 32, "C3D-style 3-D CNN for clips (N, C, T, H, W): 3x3x3 convs "
                "16,P,32,M,64,M,64 (P: 1x2x2 pool, M: 2x2x2), BN, global average pool, FC")
def c3d_small(in_channels: int = 1, num_classes: int = 10,
              widths: Sequence[Layer] = (16, "P", 32, "M", 64, "M", 64), batch_norm: bool = True,
              hidden: int = 0, dropout: float = 0.0) -> nn.Module:
    """A small C3D: every convolution 3x3x3 with stride 1 (all Winograd-friendly, F(m, 3)³).

    C3D (Tran et al., "Learning Spatiotemporal Features with 3D Convolutional Networks", 2015)
    stacks 3x3x3 convolutions with a first 1x2x2 pool that keeps early temporal detail. This
    narrow version runs on CPUs: ``features`` (convs, BN, ReLU, pools) -> global average
    pooling -> ``classifier`` (an optional hidden layer, then the output layer).

    Args:
        in_channels: channels of the clips.
        num_classes: outputs.
        widths: see :func:`c3d_features`.
        batch_norm: BatchNorm3d after each convolution.
        hidden: width of a hidden fully connected layer (0: none).
        dropout: dropout before the output layer.

    Examples:
        >>> model = c3d_small(num_classes=20)
        >>> model(torch.zeros(2, 1, 16, 32, 32)).shape
        torch.Size([2, 20])
    """
    features = c3d_features(in_channels, widths, batch_norm)
    width = [m for m in features if isinstance(m, nn.Conv3d)][-1].out_channels
    head: list[nn.Module] = [nn.Flatten()]
    if hidden:
        head += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
        width = hidden
    if dropout:
        head.append(nn.Dropout(dropout))
    head.append(nn.Linear(width, num_classes))
    return VGG(features, nn.AdaptiveAvgPool3d(1), nn.Sequential(*head))
