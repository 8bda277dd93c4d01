"""Native Winograd-domain pruning (Li, Park & Tang 2017) as a training callback.

Winograd-domain layers (parameter Q) are trained with an L1 penalty λ·Σ|Q| and, after every
optimizer step, the position-dependent hard threshold: Q at position i is pruned when
|Q_i| <= t₀ / ‖row_i(A ⊗ A)‖₂. Pruned entries are masked by the one mask mechanism. By
default they stay pruned (sparsity only grows); ``regrow=True`` is Li et al.'s own loop: a
zeroed weight still receives its gradient (straight through the mask) and comes back when
it grows above the threshold. ``final_sparsity`` stops a layer's pruning at a sparsity (the
threshold then prunes exactly that fraction, and the L1 term stops pushing that layer).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from ..criteria import OutputNormMagnitude, output_norm_factors
from ..layers import NameFilter, SelectionError, is_winograd_layer, matches, select_layers
from ..mask import Mask, apply_mask, effective_weight, get_mask
from ..model import unwrap_model
from ..protocol import TrainingCallback
from ..schedule import Schedule
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
    final_sparsity: float | None = option("stop pruning a layer at this sparsity: the threshold then "
                                  "prunes exactly this fraction and L1 stops for the layer "
                                  "(default: none, the L1 term keeps pushing)",
                                  low=0, high=1, high_open=True)
    regrow: bool | None = option("let pruned weights come back as in Li et al.'s loop: gradients "
                                 "reach them and every threshold is taken afresh (default false: "
                                 "pruned weights stay pruned)")

    def __post_init__(self) -> None:
        if self.threshold is not None and self.sparsity is not None:
            raise ValueError("method 'native' takes one of threshold (t0) or sparsity, not both "
                             "(or neither, with gradual: in the stage)")
        if (self.final_sparsity is not None and self.sparsity is not None
                and self.sparsity > self.final_sparsity):
            raise ValueError(f"native: sparsity {self.sparsity} (the first threshold) is above "
                             f"final_sparsity {self.final_sparsity} (where pruning stops)")


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
        final_sparsity: stop pruning a layer once this fraction of its Q is pruned: the threshold then
            prunes exactly this fraction (the lowest scores), and the L1 term leaves the layer.
        regrow: Li et al.'s loop: pruned weights are set to zero but still receive their
            gradient (straight through the mask), and each threshold is applied afresh to the
            underlying weights, so a weight that grows back above it returns. ``False``
            (default): masks only grow.
        schedule: instead of ``threshold``/``sparsity``: Li et al.'s gradual pruning. Each
            threshold prunes the fraction ``schedule.amount_at(step)`` of each layer's Q (the
            lowest |Q|·‖row(A⊗A)‖, its t₀ solved afresh), rising while the L1 term trains the
            weights towards zero; ``final_sparsity`` defaults to the schedule's final one.

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
                 exclude: NameFilter = None, every: int = 1, final_sparsity: float | None = None,
                 regrow: bool = False, schedule: Schedule | None = None) -> None:
        if sum(x is not None for x in (threshold, sparsity, schedule)) != 1:
            raise ValueError("NativeWinogradPruning needs exactly one of threshold (t0), sparsity "
                             "or schedule (gradual)")
        if schedule is not None and final_sparsity is None:
            final_sparsity = schedule.final
        if l1 < 0 or every < 1:
            raise ValueError(f"need l1 >= 0 and every >= 1, got l1={l1}, every={every}")
        for value in (sparsity, final_sparsity):
            if value is not None:
                amount_to_count(value, 1)          # validates the fraction
        if final_sparsity is not None and sparsity is not None and sparsity > final_sparsity:
            raise ValueError(f"sparsity {sparsity} (the first threshold) is above final_sparsity "
                             f"{final_sparsity}")
        self.threshold, self.sparsity, self.l1, self.every = threshold, sparsity, l1, every
        self.schedule = schedule
        self.final_sparsity, self.regrow = final_sparsity, bool(regrow)
        self.include, self.exclude = include, exclude
        self.thresholds: dict[str, float] = {}
        self.criterion = OutputNormMagnitude()
        self._hooks: list[Any] = []
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
        """The sparsity aimed at: ``final_sparsity``, else that of the first threshold."""
        return self.final_sparsity if self.final_sparsity is not None else self.sparsity

    def describe(self) -> str:
        """A short label: ``native t0=...``, ``native sparsity 0.50`` or ``native gradual``
        (``-> 0.70``, regrow)."""
        if self.schedule is not None:
            label = "native gradual"
        elif self.threshold is not None:
            label = f"native t0={self.threshold}"
        else:
            label = f"native sparsity {self.sparsity:.2f}"
        if self.final_sparsity is not None:
            label += f" -> {self.final_sparsity:.2f}"
        return label + (", regrow" if self.regrow else "")

    def _scores(self, module: nn.Module) -> torch.Tensor:
        """|Q|·‖row(A⊗A)‖ of the effective weights, or of the trained ones when regrowing."""
        if not self.regrow:
            return self.criterion(module)
        weight = getattr(module, "weight_orig", module.weight).detach()
        return weight.abs().to(torch.float64) * output_norm_factors(module.algorithms, weight.device)

    def _at_target(self, module: nn.Module) -> bool:
        mask = get_mask(module)
        return (self.final_sparsity is not None and mask is not None
                and 1.0 - float(mask.double().mean()) >= self.final_sparsity - 0.5 / mask.numel())

    def apply_threshold(self, model: nn.Module, step: int = 0) -> None:
        """Prune every entry at or below its position's threshold now (up to ``final_sparsity``);
        with a schedule, the fraction it gives at optimizer step ``step``."""
        scheduled = self.schedule.amount_at(step) if self.schedule is not None else None
        if self.schedule is not None and scheduled is None:
            return                                 # before the schedule begins
        for name, module in self.layers(model):
            scores = self._scores(module)
            if scheduled is not None:              # t0 solved afresh: the scheduled fraction
                count = amount_to_count(scheduled, scores.numel())
                t0 = float(scores.flatten().kthvalue(count).values) if count else -1.0
                keep = scores > t0
                limit = count
            else:
                t0 = self._threshold(name, module)
                keep = scores > t0
                limit = (amount_to_count(self.final_sparsity, keep.numel())
                         if self.final_sparsity is not None else None)
            if limit is not None:
                if int((~keep).sum()) > limit:   # exactly the target: the lowest scores go
                    mask = get_mask(module)
                    if not self.regrow and mask is not None:
                        scores = scores.masked_fill(mask == 0, -torch.inf)   # pruned ones first
                    order = scores.flatten().argsort()
                    keep = torch.ones(keep.numel(), dtype=torch.bool, device=keep.device)
                    keep[order[:limit]] = False
                    keep = keep.reshape(scores.shape)
            if self.regrow:
                with torch.no_grad():              # Li et al.: a pruned weight is set to zero
                    getattr(module, "weight_orig", module.weight).masked_fill_(~keep, 0.0)
            info = {"method": "native", "threshold": t0, "domain": "winograd",
                    "sparsity": 1.0 - float(keep.double().mean())}
            apply_mask(module, keep, "weight", combine=not self.regrow, info=info)

    def on_train_begin(self, model: nn.Module) -> None:
        self.apply_threshold(model, 0)
        if self.regrow and not self._hooks:
            for _, module in self.layers(model):
                self._hooks.append(module.register_forward_pre_hook(_straight_through))

    def on_train_end(self, model: nn.Module) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def regularization(self, model: nn.Module) -> torch.Tensor | None:
        if self.l1 == 0:
            return None
        terms = [effective_weight(m).abs().sum() for _, m in self.layers(model) if not self._at_target(m)]
        return self.l1 * sum(terms) if terms else None

    def after_step(self, model: nn.Module, step: int) -> None:
        if (step + 1) % self.every == 0:
            self.apply_threshold(model, step + 1)

    def state_dict(self) -> dict[str, Any]:
        return {"thresholds": dict(self.thresholds)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.thresholds = {k: float(v) for k, v in state.get("thresholds", {}).items()}


def _straight_through(module: nn.Module, args: Any) -> None:
    """Forward pre-hook after the mask's: same value, but pruned entries get their gradient."""
    hook = next((h for h in module._forward_pre_hooks.values() if isinstance(h, Mask)), None)
    if hook is None or not torch.is_grad_enabled():
        return
    orig, mask = module.weight_orig, module.weight_mask
    masked = hook.apply_mask(module)                      # orig * mask (gradient scale kept)
    module.weight = masked + (orig - orig.detach()) * (1 - mask.to(orig.dtype))


NATIVE = register_method(MethodSpec(
    "native", _accept, None, callback=NativeWinogradPruning, options=NativeOptions,
    states=("winograd", "winograd_relu"),
    description="native Winograd-domain pruning (Li et al.): L1 on Q and a hard threshold after "
                "every step, while fine-tuning",
    layer_function=NativeWinogradPruning,
    usage="sp.NativeWinogradPruning(model, threshold=t0 or sparsity=s, l1=λ)",
    prunes="Q of domain=\"winograd\" layers", unit="– (threshold)"))
