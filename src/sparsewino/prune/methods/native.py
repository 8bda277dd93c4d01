"""Native Winograd-domain pruning (Li, Park & Tang 2017) as a training callback.

Winograd-domain layers (parameter Q) are trained with an L1 penalty λ·Σ|Q| and, after every
optimizer step, the position-dependent hard threshold: Q at position i is pruned when
|Q_i| <= t₀ / ‖row_i(A ⊗ A)‖₂. Pruned entries are masked by the one mask mechanism, so
they stay pruned (in Li et al.'s loop a zeroed weight may regrow; here sparsity only grows).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from ..criteria import OutputNormMagnitude
from ..layers import NameFilter, SelectionError, is_winograd_layer, matches, select_layers
from ..mask import apply_mask, effective_weight
from ..model import unwrap_model
from ..protocol import TrainingCallback
from ..selection import amount_to_count, solve_threshold
from .base import MethodSpec, element_problem, option, register_method

__all__ = ["NativeWinogradPruning", "NATIVE", "NativeOptions"]


@dataclass(frozen=True)
class NativeOptions:
    """Options of ``native`` in recipes (it prunes while fine-tuning)."""

    threshold: float | None = option("t0 of the hard threshold |Q_i| <= t0 / ||row_i(A x A)|| "
                                     "(give this or sparsity)", low=0)
    sparsity: float | None = option("instead of threshold: choose t0 per layer so that the first "
                                    "threshold prunes this fraction", low=0, high=1, high_open=True)
    l1: float | None = option("weight of the L1 penalty on Q (default 1e-4)", low=0)
    every: int | None = option("apply the threshold every N optimizer steps (default 1)", low=1)

    def __post_init__(self) -> None:
        if (self.threshold is None) == (self.sparsity is None):
            raise ValueError("method 'native' needs exactly one of threshold (t0) or sparsity")


def _accept(module: nn.Module, **_: object) -> str | None:
    if not is_winograd_layer(module):
        return "-"
    return None if module.domain == "winograd" else "spatial-domain Winograd layer"


class NativeWinogradPruning(TrainingCallback):
    """Training callback: L1 on Winograd-domain weights plus Li et al.'s hard threshold.

    Args:
        model: optional; when given, the layers are checked now (error if there is none).
        threshold: t₀, one value for every layer or ``{name or pattern: t₀}``.
        l1: λ of the penalty λ·Σ|Q| over the pruned layers (0 disables it).
        sparsity: instead of ``threshold``: choose each layer's t₀ at ``on_train_begin`` so
            that the first hard threshold prunes this fraction of its Q.
        include, exclude: layer-name filters.
        every: apply the threshold every ``every`` optimizer steps.

    Examples:
        >>> from sparsewino.nn import WinogradConv2d
        >>> net = nn.Sequential(WinogradConv2d(3, 8, 3, padding=1, domain="winograd"))
        >>> callback = NativeWinogradPruning(net, sparsity=0.5, l1=1e-4)
        >>> callback.on_train_begin(net)
        >>> round(float((net[0].weight == 0).float().mean()), 2)
        0.5
    """

    def __init__(self, model: nn.Module | None = None, threshold: float | Mapping[str, float] | None = None,
                 l1: float = 1e-4, *, sparsity: float | None = None, include: NameFilter = None,
                 exclude: NameFilter = None, every: int = 1) -> None:
        if (threshold is None) == (sparsity is None):
            raise ValueError("NativeWinogradPruning needs exactly one of threshold (t0) or sparsity")
        if l1 < 0 or every < 1:
            raise ValueError(f"need l1 >= 0 and every >= 1, got l1={l1}, every={every}")
        if sparsity is not None:
            amount_to_count(sparsity, 1)          # validates the fraction
        self.threshold, self.sparsity, self.l1, self.every = threshold, sparsity, l1, every
        self.include, self.exclude = include, exclude
        self.thresholds: dict[str, float] = {}
        self.criterion = OutputNormMagnitude()
        if model is not None:
            self.layers(model)

    def layers(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """The Winograd-domain layers this callback prunes."""
        chosen, skipped = select_layers(unwrap_model(model), _accept, self.include, self.exclude)
        if not chosen:
            raise SelectionError("NativeWinogradPruning found no Winograd-domain layer (convert with "
                                 f"sparsewino.nn.convert(model, domain='winograd')); skipped: {skipped}")
        return chosen

    def _threshold(self, name: str, module: nn.Module) -> float:
        if name not in self.thresholds:
            if self.sparsity is not None:
                problem = element_problem(module, "weight", self.criterion(module), "winograd")
                count = amount_to_count(self.sparsity, problem.total)
                self.thresholds[name] = solve_threshold([problem], count)
            elif isinstance(self.threshold, Mapping):
                value = next((v for p, v in self.threshold.items() if matches(name, module, p)), None)
                if value is None:
                    raise ValueError(f"no threshold given for layer {name!r} "
                                     f"(threshold patterns: {list(self.threshold)})")
                self.thresholds[name] = float(value)
            else:
                self.thresholds[name] = float(self.threshold)
        return self.thresholds[name]

    @property
    def target(self) -> float | None:
        """The sparsity aimed at by the first threshold (``None`` when t0 is given)."""
        return self.sparsity

    def describe(self) -> str:
        """A short label: ``native t0=...`` or ``native sparsity 0.50``."""
        if self.threshold is not None:
            return f"native t0={self.threshold}"
        return f"native sparsity {self.sparsity:.2f}"

    def apply_threshold(self, model: nn.Module) -> None:
        """Prune every entry at or below its position's threshold now."""
        for name, module in self.layers(model):
            t0 = self._threshold(name, module)
            keep = self.criterion(module) > t0
            sparsity = 1.0 - float(keep.double().mean())
            apply_mask(module, keep, "weight", info={"method": "native", "threshold": t0,
                                                     "domain": "winograd", "sparsity": sparsity})

    def on_train_begin(self, model: nn.Module) -> None:
        self.apply_threshold(model)

    def regularization(self, model: nn.Module) -> torch.Tensor | None:
        if self.l1 == 0:
            return None
        return self.l1 * sum(effective_weight(m).abs().sum() for _, m in self.layers(model))

    def after_step(self, model: nn.Module, step: int) -> None:
        if (step + 1) % self.every == 0:
            self.apply_threshold(model)

    def state_dict(self) -> dict[str, Any]:
        return {"thresholds": dict(self.thresholds)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.thresholds = {k: float(v) for k, v in state.get("thresholds", {}).items()}


NATIVE = register_method(MethodSpec(
    "native", _accept, None, callback=NativeWinogradPruning, options=NativeOptions,
    states=("winograd", "winograd_relu"),
    description="native Winograd-domain pruning (Li et al.): L1 on Q and a hard threshold after "
                "every step, while fine-tuning",
    layer_function=NativeWinogradPruning,
    usage="sp.NativeWinogradPruning(model, threshold=t0 or sparsity=s, l1=λ)",
    prunes="Q of domain=\"winograd\" layers", unit="– (threshold)"))
