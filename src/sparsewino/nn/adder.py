"""AdderConv2d (AdderNet, Chen et al. CVPR 2020): Y = -sum |X - F| over each receptive field.

The layer has no multiplications in its forward pass: each output is minus the l1 distance
between the filter and the input patch. AdderNet's training rules are options of the layer:

* ``grad="addernet"`` (default): the filter gets the full-precision gradient ``X - F`` (the
  derivative of -(X - F)²/2 instead of sign(X - F)), the input the HardTanh-clipped
  ``HT(F - X)``; ``grad="exact"`` uses the true (sign) derivatives.
* ``eta`` (default 0.1): adaptive per-layer learning-rate scaling, the filter gradient is
  multiplied by ``eta * sqrt(k) / ||grad||₂`` (k = number of filter entries) before the
  optimizer sees it; ``eta=None`` turns it off.

AdderNet puts a BatchNorm after every adder layer (the outputs are all <= 0 and large).
``p`` (1 <= p <= 2) generalises the distance to ``-sum |X - F|^p`` (``p = 2``: the l2 form
used at the start of l2-to-l1 training). The products run on the C++ kernel of
:mod:`sparsewino.nn.adder_kernels` (float32 CPU) or in PyTorch.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .adder_kernels import adder_gradient, adder_product
from .kinds import LayerKind, register_layer_kind
from .kinds import adder_layer_types as _registered_adder_types

__all__ = ["AdderConv2d", "AdderProduct", "adder_layer_types", "GRAD_RULES", "scale_gradient",
           "check_exponent"]

GRAD_RULES = ("addernet", "exact")
_DTYPES = (torch.float32, torch.float64)


def check_exponent(p: Any, cls: str) -> float:
    """``p`` as a float in [1, 2], else a ``ValueError`` naming ``cls``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 1.0 <= float(p) <= 2.0:
        raise ValueError(f"{cls}: p must be a number in [1, 2] (1: l1 adder, 2: l2), got {p!r}")
    return float(p)


def _check_rule(grad: str, eta: Any, cls: str) -> None:
    if grad not in GRAD_RULES:
        raise ValueError(f"{cls}: grad must be one of {GRAD_RULES}, got {grad!r}")
    if eta is not None and (isinstance(eta, bool) or not isinstance(eta, (int, float)) or
                            not eta > 0 or not math.isfinite(eta)):
        raise ValueError(f"{cls}: eta (adaptive learning-rate scale) must be a positive number "
                         f"or None, got {eta!r}")


class AdderProduct(torch.autograd.Function):
    """``Y[b, a, c] = -sum_j |S[b, a, j] - R[b, c, j]|^p`` with AdderNet's or exact gradients.

    ``S`` are the inputs (patches or transformed tiles) and ``R`` the weights.
    """

    @staticmethod
    def forward(ctx: Any, S: torch.Tensor, R: torch.Tensor, p: float, grad: str) -> torch.Tensor:
        ctx.save_for_backward(S, R)
        ctx.p, ctx.grad = p, grad
        return adder_product(S, R, p)

    @staticmethod
    def backward(ctx: Any, G: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        S, R = ctx.saved_tensors
        G = G.contiguous()
        d_input = d_weight = None
        if ctx.needs_input_grad[0]:
            mode = "hardtanh" if ctx.grad == "addernet" else "exact"
            d_input = adder_gradient(G, R, S, ctx.p, mode)
        if ctx.needs_input_grad[1]:
            if ctx.grad == "addernet":          # full precision: sum_a G[a, c] (S[a] - R[c])
                d_weight = torch.bmm(G.transpose(1, 2), S) - G.sum(1).unsqueeze(-1) * R
            else:
                d_weight = adder_gradient(G.transpose(1, 2), S, R, ctx.p, "exact")
        return d_input, d_weight, None, None


class _ScaleGradient(torch.autograd.Function):
    """Identity whose backward rescales the gradient to ``eta * sqrt(numel) / ||grad||₂``."""

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, eta: float) -> torch.Tensor:
        ctx.eta = eta
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        norm = grad.norm()
        if not torch.isfinite(norm) or norm == 0:
            return grad, None
        return grad * (ctx.eta * math.sqrt(grad.numel()) / norm), None


def scale_gradient(weight: torch.Tensor, eta: float | None) -> torch.Tensor:
    """``weight`` whose gradient is scaled by AdderNet's adaptive rule (identity for ``None``)."""
    if eta is None or not (torch.is_grad_enabled() and weight.requires_grad):
        return weight
    return _ScaleGradient.apply(weight, eta)


def _check_channels(cls: str, in_channels: Any, out_channels: Any, dtype: Any) -> None:
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{cls}: {name} must be a positive int, got {value!r}")
    if dtype is not None and dtype not in _DTYPES:
        raise TypeError(f"{cls} supports float32 and float64, got {dtype}")


def _check_input(layer: nn.Module, x: Any, out_size: Sequence[int]) -> None:
    """The input checks both adder layers share (tensor, shape, dtype, large enough)."""
    cls = type(layer).__name__
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{cls} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != layer.in_channels:
        raise ValueError(f"{cls} expects input (N, {layer.in_channels}, H, W), got shape "
                         f"{tuple(x.shape)}")
    if x.dtype != layer.weight.dtype:
        raise TypeError(f"{cls}: input dtype {x.dtype} does not match weight dtype "
                        f"{layer.weight.dtype}")
    if min(out_size) < 1:
        raise ValueError(f"{cls}: input {tuple(x.shape[2:])} is too small for kernel "
                         f"{layer.kernel_size} with padding {layer.padding}")


def _pair(value: Any, name: str, cls: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    items = tuple(value) if isinstance(value, (tuple, list)) else None
    if items is None or len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                                  for v in items):
        raise ValueError(f"{cls}: {name} must be an int or a pair of ints, got {value!r}")
    return items  # type: ignore[return-value]


class AdderConv2d(nn.Module):
    """Adder convolution: ``y[n, k] = -sum_{c, i, j} |x[n, c, .+i, .+j] - weight[k, c, i, j]|^p``.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as ``nn.Conv2d`` (padding an
            int, a pair, ``"same"`` (stride 1) or ``"valid"``).
        dilation, groups: must be 1 (anything else raises ``ValueError``).
        bias: add a bias (AdderNet has none: a BatchNorm follows).
        p: exponent in [1, 2] (1: AdderNet's l1 distance).
        grad: ``"addernet"`` (full-precision filter gradient, HardTanh input gradient) or
            ``"exact"``.
        eta: adaptive learning-rate scale (``None``: off).

    Examples:
        >>> layer = AdderConv2d(3, 8, 3, padding=1)
        >>> y = layer(torch.randn(2, 3, 10, 10))
        >>> y.shape, bool((y <= 0).all())
        (torch.Size([2, 8, 10, 10]), True)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | str | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = False, *,
                 p: float = 1.0, grad: str = "addernet", eta: float | None = 0.1,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        cls = type(self).__name__
        _check_channels(cls, in_channels, out_channels, dtype)
        if groups != 1:
            raise ValueError(f"{cls} supports only groups=1, got groups={groups!r}: grouped adder "
                             "layers are not implemented; use one AdderConv2d per group.")
        if _pair(dilation, "dilation", cls) != (1, 1):
            raise ValueError(f"{cls} supports only dilation=1, got dilation={dilation!r}")
        self.kernel_size = _pair(kernel_size, "kernel_size", cls)
        self.stride = _pair(stride, "stride", cls)
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"{cls}: kernel_size and stride must be >= 1")
        if isinstance(padding, str):
            if padding == "valid":
                padding = 0
            elif padding == "same" and self.stride == (1, 1) and all(k % 2 for k in self.kernel_size):
                padding = tuple(k // 2 for k in self.kernel_size)
            else:
                raise ValueError(f"{cls}: padding must be an int, a pair, 'valid' or 'same' (odd "
                                 f"kernel, stride 1), got {padding!r}")
        self.padding = _pair(padding, "padding", cls)
        if min(self.padding) < 0:
            raise ValueError(f"{cls}: padding must be >= 0, got {padding!r}")
        _check_rule(grad, eta, cls)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.p = check_exponent(p, cls)
        self.grad, self.eta = grad, eta
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size,
                                               device=device, dtype=dtype))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Conv2d's initialisation (AdderNet starts from it too)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels * math.prod(self.kernel_size))
            nn.init.uniform_(self.bias, -bound, bound)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output spatial size for an input of ``height x width``."""
        return tuple((s + 2 * p - k) // st + 1 for s, p, k, st in
                     zip((height, width), self.padding, self.kernel_size, self.stride))  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unbatched = isinstance(x, torch.Tensor) and x.dim() == 3
        if unbatched:
            x = x.unsqueeze(0)
        _check_input(self, x, self.output_size(*x.shape[2:]) if isinstance(x, torch.Tensor)
                     and x.dim() == 4 else (1, 1))
        n = x.shape[0]
        ho, wo = self.output_size(*x.shape[2:])
        cols = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)  # (N, J, L)
        patches = cols.transpose(1, 2).reshape(1, n * ho * wo, -1)
        weight = scale_gradient(self.weight, self.eta).reshape(1, self.out_channels, -1)
        y = AdderProduct.apply(patches, weight, self.p, self.grad)               # (1, N·L, K)
        y = y.reshape(n, ho * wo, self.out_channels).transpose(1, 2).reshape(n, -1, ho, wo)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return y.squeeze(0) if unbatched else y

    @classmethod
    def from_conv(cls, conv: nn.Module, **options: Any) -> "AdderConv2d":
        """An adder layer shaped like ``conv`` (``nn.Conv2d`` or ``AdderConv2d``), its weights
        (and bias) copied as the initialisation. The function differs from a convolution's:
        train (or fine-tune) afterwards. ``options``: ``p``, ``grad``, ``eta``.
        """
        if not isinstance(conv, (nn.Conv2d, AdderConv2d)):
            raise TypeError(f"{cls.__name__}.from_conv expects an nn.Conv2d or AdderConv2d, got "
                            f"{type(conv).__name__}")
        if isinstance(conv, AdderConv2d):
            options = {"p": conv.p, "grad": conv.grad, "eta": conv.eta, **options}
        if isinstance(conv, nn.Conv2d) and conv.padding_mode != "zeros":
            raise ValueError(f"{cls.__name__}.from_conv: padding_mode {conv.padding_mode!r} is not "
                             "supported (zeros only)")
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=getattr(conv, "dilation", 1),
                    groups=getattr(conv, "groups", 1), bias=conv.bias is not None,
                    device=conv.weight.device, dtype=conv.weight.dtype, **options)
        with torch.no_grad():
            layer.weight.copy_(conv.weight)
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        layer.train(conv.training)
        return layer

    def operations(self, input_shape: Sequence[int]) -> dict[str, int]:
        """Operations of one forward pass on ``(N, C, H, W)``: per output, C·kh·kw subtractions
        and as many accumulations (additions; ``|.|`` is a sign-bit clear, not counted); with
        ``p = 2`` each term is squared (one multiplication), with other ``p`` a power
        (counted as one multiplication, a lower bound). A weight that is exactly zero (pruned)
        saves its subtraction: the term is ``|x|``.
        """
        n, _, h, w = input_shape
        ho, wo = self.output_size(h, w)
        positions = n * ho * wo
        weight = self.weight.detach()
        nonzero = int((weight != 0).sum())
        terms = weight.numel() * positions
        adds = (weight.numel() + nonzero) * positions
        mults = 0 if self.p == 1.0 else terms
        return {"additions": adds, "multiplications": mults, "terms": terms,
                "outputs": positions * self.out_channels, "nonzero": nonzero}

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")
        if self.bias is not None:
            text += ", bias=True"
        return text + f", p={self.p:g}, grad={self.grad!r}, eta={self.eta}"


def adder_layer_types() -> tuple[type[nn.Module], ...]:
    """The adder layer classes (AdderConv2d and WinogradAdderConv2d): the layer classes of the
    adder kinds of :data:`~sparsewino.nn.LAYER_KINDS`."""
    return _registered_adder_types()


register_layer_kind(LayerKind(
    "adder2d", "AdderConv2d (AdderNet): -sum |x - w|^p instead of products", nn.Conv2d,
    AdderConv2d, made_by=None, domain="spatial", adder=True))
