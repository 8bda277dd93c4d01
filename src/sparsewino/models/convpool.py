"""ConvPool-CNN-C (Springenberg et al.), the CIFAR-100 model of the Winograd pruning papers."""
from __future__ import annotations

from torch import nn

from .registry import register_model

__all__ = ["convpool_cnn_c"]


def _conv(cin: int, cout: int, kernel: int, padding: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=padding, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    return layers + [nn.ReLU(inplace=True)]


@register_model("convpool_cnn_c", 32, "ConvPool-CNN-C for CIFAR-100: 3x3 conv 96x3, maxpool(3,2), "
                "192x3, maxpool, 3x3 conv 192 (pad 0), 1x1 conv 192, 1x1 conv classes, global avg pool")
def convpool_cnn_c(in_channels: int = 3, num_classes: int = 100, batch_norm: bool = True,
                   dropout: float = 0.5, width: int = 96) -> nn.Sequential:
    """ConvPool-CNN-C.

    The class layer is a 1x1 convolution followed by global average pooling (no ReLU on the
    class scores, as in the usual PyTorch ports).

    Args:
        in_channels, num_classes: image channels and classes.
        batch_norm: BatchNorm after every hidden convolution.
        dropout: dropout after each max-pool (0 disables).
        width: width of the first block; the second and third use twice that (192).
    """
    wide = 2 * width
    layers: list[nn.Module] = []
    layers += _conv(in_channels, width, 3, 1, batch_norm) + _conv(width, width, 3, 1, batch_norm) \
        + _conv(width, width, 3, 1, batch_norm)
    layers.append(nn.MaxPool2d(3, stride=2, padding=1))
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += _conv(width, wide, 3, 1, batch_norm) + _conv(wide, wide, 3, 1, batch_norm) \
        + _conv(wide, wide, 3, 1, batch_norm)
    layers.append(nn.MaxPool2d(3, stride=2, padding=1))
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += _conv(wide, wide, 3, 0, batch_norm) + _conv(wide, wide, 1, 0, batch_norm)
    layers += [nn.Conv2d(wide, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)
