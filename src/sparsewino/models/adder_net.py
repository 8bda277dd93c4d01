"""A small Fashion-MNIST network whose body is convolutions, adder layers or Winograd adder layers."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ..nn.adder import AdderConv2d
from ..nn.winograd_adder import WinogradAdderConv2d
from .registry import register_model

__all__ = ["adder_cnn", "BODY_LAYERS"]

#: What the body's 3x3 layers are.
BODY_LAYERS = ("conv", "adder", "winograd_adder")


def _body_layer(layer: str, cin: int, cout: int, tile: int, transforms: str, p: float,
                eta: float | None) -> nn.Module:
    if layer == "conv":
        return nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    if layer == "adder":
        return AdderConv2d(cin, cout, 3, padding=1, p=p, eta=eta)
    return WinogradAdderConv2d(cin, cout, 3, padding=1, tile=tile, transforms=transforms, p=p,
                               eta=eta)


@register_model("adder_cnn", 28, "stem conv + three 3x3 body layers (conv, adder or Winograd adder) "
                "with BatchNorm, two max-pools, global average pool, linear classifier")
def adder_cnn(in_channels: int = 1, num_classes: int = 10, layer: str = "conv",
              widths: Sequence[int] = (16, 16, 32, 32), tile: int = 2, transforms: str = "balanced",
              p: float = 1.0, eta: float | None = 0.1) -> nn.Sequential:
    """The network of the AdderNet comparison (docs/adder.md).

    As in AdderNet, the first layer (a 3x3 convolution on the image) and the classifier keep
    their multiplications; the three body layers are ``layer``: ``"conv"`` (nn.Conv2d),
    ``"adder"`` (:class:`~sparsewino.nn.AdderConv2d`) or ``"winograd_adder"``
    (:class:`~sparsewino.nn.WinogradAdderConv2d`, ``tile``, ``transforms``). Every body layer
    is followed by BatchNorm and ReLU; max-pools after the first two.

    Args:
        widths: stem width and the three body widths.
        tile, transforms: of the Winograd adder layers.
        p, eta: exponent and adaptive learning-rate scale of the adder layers.

    Examples:
        >>> import torch
        >>> adder_cnn(layer="winograd_adder")(torch.randn(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    if layer not in BODY_LAYERS:
        raise ValueError(f"adder_cnn: layer must be one of {BODY_LAYERS}, got {layer!r}")
    widths = list(widths)
    if len(widths) != 4 or not all(isinstance(w, int) and w > 0 for w in widths):
        raise ValueError(f"adder_cnn: widths must be 4 positive ints (stem, body x3), got {widths}")
    stem, w1, w2, w3 = widths
    layers: list[nn.Module] = [nn.Conv2d(in_channels, stem, 3, padding=1, bias=False),
                               nn.BatchNorm2d(stem), nn.ReLU(inplace=True)]
    for i, (cin, cout) in enumerate(((stem, w1), (w1, w2), (w2, w3))):
        layers += [_body_layer(layer, cin, cout, tile, transforms, p, eta), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True)]
        if i < 2:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w3, num_classes)]
    return nn.Sequential(*layers)
