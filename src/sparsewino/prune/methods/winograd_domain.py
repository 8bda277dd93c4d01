"""Spatial-Winograd step 2 (Yu, Park & Naumov): Winograd-domain pruning with the importance factor matrix.

On a Winograd-domain layer (parameter Q), prune the entries with the smallest |Q|·M̂ to the
target sparsity, and during retraining divide Q's gradient by M̂^p (the mask mechanism's
gradient scale, so any trainer applies it). ``ifm=False`` gives plain Winograd-domain
magnitude pruning with no gradient scaling.

M̂ comes from the layer's own algorithms and so depends on the interpolation points (the
authors used Lavin's points): for F(4,3) max M̂ is about 20.2 with Lavin's points
{0, ±1, ±2} and about 20.5 with sparsewino's default accurate points. Gradient scaling by a
per-entry constant is (nearly) cancelled by Adam-type optimizers, which normalise each
entry's step: it matters with SGD.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...winograd.algorithm import importance_factor_matrix
from ..criteria import IFMMagnitude, Importance, Magnitude, require_winograd_domain
from ..layers import is_winograd_layer
from ..mask import set_grad_scale
from ..selection import ScoreProblem
from .base import MethodSpec, element_problem, option, prune_layer, register_method

__all__ = ["winograd_domain", "WINOGRAD_DOMAIN", "WinogradDomainOptions", "ifm_grad_scale",
           "DEFAULT_GRAD_POWER", "RECOMMENDED_LR"]

#: Default exponent p of the gradient scaling 1 / M̂^p (the authors' value; our lr x p sweep on
#: Fashion-MNIST in docs/pruning.md found it best together with RECOMMENDED_LR).
DEFAULT_GRAD_POWER = 1.5
#: Step-2 fine-tuning learning rate (SGD, momentum 0.9) measured best with p = 1.5; for the IFM
#: criterion without scaling (p = 0) 1e-4 was best: scaling lowers the effective step.
RECOMMENDED_LR = 1e-3


@dataclass(frozen=True)
class WinogradDomainOptions:
    """Options of ``winograd_domain`` in recipes and on the command line."""

    ifm: bool | None = option("weight |Q| by the importance factor matrix and scale gradients "
                              "(default true; false: plain magnitude of Q)")
    grad_power: float | None = option(f"exponent p of the gradient scaling 1/M^p (default "
                                      f"{DEFAULT_GRAD_POWER}; 0: none)", low=0)
    block: int | None = option("prune blocks of this many consecutive output channels at one "
                               "position and input channel together (8: the engine's blocked "
                               "format, fast at batch 1 on small maps); default 1: single "
                               "entries", low=1)


def ifm_grad_scale(module: nn.Module, grad_power: float = DEFAULT_GRAD_POWER) -> torch.Tensor:
    """1 / M̂^p shaped ``(1, 1, *n)`` for a Winograd layer (float64)."""
    factors = importance_factor_matrix(module.algorithms, normalize=True)
    return (factors ** -float(grad_power)).reshape(1, 1, *factors.shape)


def _accept(module: nn.Module, **_: object) -> str | None:
    if not is_winograd_layer(module):
        return "-"
    if module.domain != "winograd":
        return "spatial-domain Winograd layer (convert with domain='winograd' first)"
    return None


def _build(module: nn.Module, name: str = "weight", ifm: bool = True,
           importance: Importance | None = None, block: int | None = None,
           **_: object) -> ScoreProblem:
    require_winograd_domain(module, name, "winograd_domain pruning")
    criterion = importance or (IFMMagnitude() if ifm else Magnitude())
    return element_problem(module, name, criterion(module, name), "winograd",
                           1 if block is None else block)


def _finish(module: nn.Module, name: str = "weight", ifm: bool = True,
            grad_power: float | None = None, **_: object) -> None:
    power = DEFAULT_GRAD_POWER if grad_power is None else float(grad_power)
    if ifm and power != 0:
        set_grad_scale(module, ifm_grad_scale(module, power), name)
    else:
        set_grad_scale(module, None, name)


def winograd_domain(module: nn.Module, amount: float | int, name: str = "weight", *,
                    ifm: bool = True, grad_power: float | None = None,
                    importance: Importance | None = None, block: int | None = None) -> nn.Module:
    """Step 2: prune Q by |Q|·M̂ and scale its gradient by 1/M̂^p during retraining.

    Args:
        module: ``WinogradConv2d``/``WinogradConv3d`` with ``domain="winograd"``.
        amount: fraction of Q's entries pruned after the call (or their count); zeros left
            by step 1 are pruned first and count towards it.
        name: must be ``"weight"``.
        ifm: weight the magnitude by the importance factor matrix M̂ and scale gradients;
            ``False`` is plain Winograd-domain magnitude pruning (any gradient scale removed).
        grad_power: p in 1/M̂^p (default :data:`DEFAULT_GRAD_POWER`); 0 disables scaling.
        importance: a criterion replacing |Q|·M̂ (gradient scaling still follows ``ifm``).
        block: prune blocks of this many consecutive output channels at one position and input
            channel together, scored by their mean |Q|·M̂ (8: what the engine's blocked format
            runs fastest at batch 1); ``None`` or 1: single entries.

    Returns:
        ``module``.

    Examples:
        >>> from sparsewino.nn import WinogradConv2d
        >>> layer = WinogradConv2d(4, 4, 3, padding=1, tile=2, domain="winograd")
        >>> layer = winograd_domain(layer, amount=0.5, grad_power=1.5)
        >>> float((layer.weight == 0).float().mean()), tuple(layer.weight_grad_scale.shape)
        (0.5, (1, 1, 4, 4))
    """
    return prune_layer(WINOGRAD_DOMAIN, module, amount, name, ifm=ifm, grad_power=grad_power,
                       importance=importance, block=block)


WINOGRAD_DOMAIN = register_method(MethodSpec(
    "winograd_domain", _accept, _build, _finish, options=WinogradDomainOptions,
    states=("winograd", "winograd_relu"),
    description="step 2 (Yu et al.): prune Q by |Q| x importance factor matrix, gradients / M^p",
    layer_function=winograd_domain,
    usage="sp.winograd_domain(layer, amount, ifm=True, grad_power=None, block=None)",
    prunes="Q of domain=\"winograd\" layers", unit="entries of Q"))
