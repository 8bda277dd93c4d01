"""Fold pruned feature maps out of the network: their BatchNorm shift goes into the next layer.

A convolution whose output channel k is pruned (all its weights zero) still feeds the next
layer a constant: the BatchNorm after it outputs β_k − γ_k·μ_k/σ_k (and ReLU(·) of that after
the activation). :func:`fold_pruned_feature_maps` adds what that constant contributes to the
next convolution's output to its bias (or, when it has none, subtracts it from the running mean
of the BatchNorm after it), masks the BatchNorm's γ_k and β_k so the map is exactly zero, and
masks the next layer's kernels that read map k, so they are neither multiplied nor counted
(:func:`sparsewino.engine.count`). The result is the same function away from the next layer's
zero padding (exactly, with no padding); at the borders the padded zeros used to meet the
constant, which fine-tuning absorbs. Only what an ``nn.Sequential`` shows is followed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from .chains import find_in_chains
from .layers import conv_layer_types, is_winograd_layer
from .mask import apply_mask, effective_weight, get_mask, pruning_info

__all__ = ["fold_pruned_feature_maps", "FoldResult"]

logger = logging.getLogger("sparsewino")

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: Modules that keep a constant map constant (away from padding) and are the identity on zero.
_KEEP_CONSTANT = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.MaxPool1d,
                  nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
                  nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
#: Element-wise activations: applied to the constant.
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
                nn.Hardtanh, nn.Hardswish, nn.Mish)


@dataclass
class FoldResult:
    """What :func:`fold_pruned_feature_maps` did for one layer.

    Attributes:
        channels: the pruned output channels folded now.
        consumer: the layer that reads them (its kernels were masked), if any.
        destination: where their constant went (``"<name>.bias"``, ``"<name>.running_mean"``),
            ``None`` when it was zero or nothing was folded.
        reason: why nothing was folded (empty when it was).
    """

    channels: list[int] = field(default_factory=list)
    consumer: str | None = None
    destination: str | None = None
    reason: str = ""


def _dead_channels(layer: nn.Module) -> torch.Tensor:
    weight = effective_weight(layer, "weight").detach()
    return weight.flatten(1).abs().sum(1) == 0


def _channel_constant(layer: nn.Module, bn: nn.BatchNorm2d | None) -> torch.Tensor:
    """The value each all-zero-weight channel outputs after the layer (and its BatchNorm)."""
    bias = getattr(layer, "bias", None)
    k = layer.weight.shape[0]
    value = (effective_weight(layer, "bias").detach().double() if isinstance(bias, torch.Tensor)
             else torch.zeros(k, dtype=torch.float64, device=layer.weight.device))
    if bn is not None:
        gamma = effective_weight(bn, "weight").detach().double()
        beta = effective_weight(bn, "bias").detach().double()
        scale = gamma / torch.sqrt(bn.running_var.double() + bn.eps)
        value = (value - bn.running_mean.double()) * scale + beta
    return value


def _response(consumer: nn.Module, constant: torch.Tensor) -> torch.Tensor:
    """What input maps holding ``constant`` (one value per map) add to an interior output."""
    weight = consumer.weight
    dims = weight.dim() - 2
    size = 24
    shape = (1, constant.numel(), *([size] * dims))
    zeros = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
    filled = constant.to(weight.dtype).reshape(1, -1, *([1] * dims)).expand(shape).contiguous()
    was_training = consumer.training
    consumer.eval()
    try:
        with torch.no_grad():
            centre = (slice(None), slice(None), *([size // 2] * dims))
            delta = consumer(filled)[centre] - consumer(zeros)[centre]
    finally:
        consumer.train(was_training)
    return delta.reshape(-1)


def _input_kernel_mask(consumer: nn.Module, dead: torch.Tensor) -> torch.Tensor:
    """Keep-mask of ``consumer.weight`` without the kernels that read the ``dead`` input maps."""
    weight = consumer.weight
    k, per_group = weight.shape[:2]
    groups = int(getattr(consumer, "groups", 1))
    reads = dead.reshape(groups, 1, per_group).expand(groups, k // groups, per_group).reshape(k, per_group)
    keep = ~reads.to(weight.device)
    return keep.reshape(k, per_group, *([1] * (weight.dim() - 2))).expand_as(weight).to(weight.dtype)


def fold_pruned_feature_maps(model: nn.Module, layer: nn.Module) -> FoldResult:
    """Fold the pruned output channels of ``layer`` (all weights zero) into the next layer.

    Args:
        model: the model holding ``layer`` in an ``nn.Sequential`` (nested ones are followed).
        layer: a convolution whose pruned feature maps are folded.

    Returns:
        A :class:`FoldResult`; channels folded before (their BatchNorm entries already masked)
        are not folded twice.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2), nn.ReLU(),
        ...                     nn.Conv2d(2, 3, 3))
        >>> with torch.no_grad():
        ...     net[0].weight[1] = 0.0; net[1].bias[1] = 0.25     # map 1 pruned, BN shift 0.25
        >>> result = fold_pruned_feature_maps(net, net[0])
        >>> result.channels, result.destination, int(net[3].weight_mask[:, 1].sum())
        ([1], '3.bias', 0)
    """
    found = find_in_chains(model, layer)
    if found is None:
        return FoldResult(reason="not inside an nn.Sequential: what reads its output is unknown")
    chain, index = found
    dead = _dead_channels(layer)
    position = index + 1
    bn = None
    if position < len(chain) and isinstance(chain[position][1], _BATCH_NORMS):
        bn = chain[position][1]
        if not bn.affine or not bn.track_running_stats:
            return FoldResult(reason=f"BatchNorm {chain[position][0]} has no affine parameters "
                                     "or running statistics to fold")
        bn_mask = get_mask(bn, "weight")
        if bn_mask is not None:                  # folded before
            dead = dead & (bn_mask.to(dead.device) != 0)
        position += 1
    if not bool(dead.any()):
        return FoldResult()
    constant = torch.where(dead, _channel_constant(layer, bn), torch.zeros((), dtype=torch.float64))
    while position < len(chain) and isinstance(chain[position][1], (*_KEEP_CONSTANT, *_ACTIVATIONS)):
        module = chain[position][1]
        if isinstance(module, _ACTIVATIONS):
            constant = torch.where(dead, module(constant.clone()), constant)
        position += 1
    if position >= len(chain) or not isinstance(chain[position][1], conv_layer_types()):
        what = "the end of its nn.Sequential" if position >= len(chain) else \
            f"{chain[position][0]} ({type(chain[position][1]).__name__})"
        reason = f"its output reaches {what}, not a convolution: the pruned maps' constant stays"
        if bool((constant != 0).any()):
            logger.warning("fold: %s: %s", _name_of(model, layer), reason)
        return FoldResult(reason=reason)
    consumer_name, consumer = chain[position][0], chain[position][1]
    result = FoldResult(channels=torch.nonzero(dead).flatten().tolist(), consumer=consumer_name)
    if bool((constant != 0).any()):
        delta = _response(consumer, constant)
        bias = getattr(consumer, "bias", None)
        after = chain[position + 1][1] if position + 1 < len(chain) else None
        if isinstance(bias, torch.Tensor):
            target = getattr(consumer, "bias_orig", None)
            with torch.no_grad():
                (target if target is not None else bias).add_(delta.to(bias.dtype))
            result.destination = f"{consumer_name}.bias"
        elif isinstance(after, _BATCH_NORMS) and after.track_running_stats:
            with torch.no_grad():
                after.running_mean.sub_(delta.to(after.running_mean.dtype))
            result.destination = f"{chain[position + 1][0]}.running_mean"
        else:
            result = FoldResult(reason=f"{consumer_name} has no bias and no BatchNorm after it to "
                                       "take the pruned maps' constant")
            logger.warning("fold: %s: %s", _name_of(model, layer), result.reason)
            return result
    keep = (~dead).to(torch.float32)
    if bn is not None:
        info = {"method": "structured", "domain": "spatial", "folded": result.channels}
        apply_mask(bn, keep.to(bn.weight.dtype), "weight", info=info)
        apply_mask(bn, keep.to(bn.bias.dtype), "bias", info=info)
    elif isinstance(getattr(layer, "bias", None), torch.Tensor):
        apply_mask(layer, keep.to(layer.bias.dtype), "bias")
    info = None if pruning_info(consumer) else {
        "method": "structured", "domain": "winograd" if is_winograd_layer(consumer, "winograd")
        else "spatial", "reason": "kernels reading pruned feature maps"}
    apply_mask(consumer, _input_kernel_mask(consumer, dead), "weight", info=info)
    return result


def _name_of(model: nn.Module, layer: nn.Module) -> str:
    return next((name for name, module in model.named_modules() if module is layer), "?")
