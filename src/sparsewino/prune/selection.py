"""Amounts and thresholds: every method prunes the units scoring at or below a threshold t.

A method turns one layer into a :class:`ThresholdProblem`: the units it counts (weights,
Winograd positions, channels, ...), how many of them are pruned at a threshold t, and the
masks that threshold gives. :func:`solve_threshold` finds t by bisection over the sorted
candidate thresholds so that the pruned count is as close as possible to the target, for
one layer or for several layers at once (a global amount, like ``prune.global_unstructured``).
"""
from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .mask import apply_mask

__all__ = ["amount_to_count", "ThresholdProblem", "ScoreProblem", "solve_threshold",
           "prune_problems"]


def amount_to_count(amount: float | int, total: int, unit: str = "units") -> int:
    """Number of ``unit`` to prune: ``amount`` is a fraction in [0, 1] or a count in [0, total].

    Raises:
        TypeError / ValueError: a bool, a negative amount, a fraction above 1, or a count
        above ``total``.
    """
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(f"amount must be a fraction (float in [0, 1]) or a count (int), "
                        f"got {amount!r}")
    if isinstance(amount, numbers.Integral):
        if not 0 <= amount <= total:
            raise ValueError(f"amount {amount} is a count of {unit} but the layer has {total}; "
                             "give a count in [0, total] or a fraction (float)")
        return int(amount)
    if not (math.isfinite(amount) and 0.0 <= amount <= 1.0):
        raise ValueError(f"amount {amount!r} is a fraction and must lie in [0, 1]")
    return int(round(float(amount) * total))


class ThresholdProblem(ABC):
    """One layer's pruning decision as a threshold: units scoring <= t are pruned.

    Attributes:
        module: the layer.
        total: how many units ``amount`` counts (e.g. weights, or Winograd positions).
        domain: where pruned units are counted (``"spatial"`` or ``"winograd"``).
    """

    module: nn.Module
    total: int
    domain: str

    @abstractmethod
    def candidates(self) -> torch.Tensor:
        """Sorted float64 thresholds at which the pruned count may change."""

    @abstractmethod
    def pruned_at(self, threshold: float) -> int:
        """Units pruned (counted in ``domain``) at ``threshold``; non-decreasing in it."""

    @abstractmethod
    def masks_at(self, threshold: float) -> dict[str, torch.Tensor]:
        """Masks per tensor name (usually just ``weight``) at ``threshold``."""


class ScoreProblem(ThresholdProblem):
    """Units with one score each (higher = keep); ``-inf`` marks units already pruned.

    Args:
        module: the layer.
        scores: one score per unit (any shape; flattened).
        expand: maps the kept units (a bool tensor shaped like ``scores``) to the masks.
        domain: where units are counted.
        sizes: entries per unit, shaped like ``scores`` (groups pruned together, e.g. blocks
            of output channels); ``None``: one each. Counts (``total``, ``pruned_at``) are in
            entries.
    """

    def __init__(self, module: nn.Module, scores: torch.Tensor,
                 expand: Callable[[torch.Tensor], dict[str, torch.Tensor]], domain: str,
                 sizes: torch.Tensor | None = None) -> None:
        self.module = module
        self.scores = scores.detach().to(torch.float64)
        if torch.isnan(self.scores).any():
            raise ValueError(f"importance scores of {type(module).__name__} contain NaN; "
                             "the weights are probably NaN (diverged training?)")
        self._sorted, order = self.scores.flatten().sort(stable=True)
        self._pruned = None                              # entries pruned up to each unit
        if sizes is not None:
            self._pruned = torch.cumsum(sizes.flatten().to(torch.int64)[order], 0)
        self.expand = expand
        self.domain = domain
        self.total = self.scores.numel() if sizes is None else int(sizes.sum())

    def candidates(self) -> torch.Tensor:
        return torch.unique(self._sorted)

    def pruned_at(self, threshold: float) -> int:
        units = int(torch.searchsorted(self._sorted, torch.tensor([threshold], dtype=torch.float64),
                                       right=True).item())
        if self._pruned is None or units == 0:
            return units
        return int(self._pruned[units - 1])

    def masks_at(self, threshold: float) -> dict[str, torch.Tensor]:
        return self.expand(self.scores > threshold)


def solve_threshold(problems: Sequence[ThresholdProblem], target: int) -> float:
    """Threshold whose total pruned count (summed over ``problems``) is closest to ``target``.

    Bisection over the sorted union of candidate thresholds (``-inf`` = prune nothing new);
    on a tie the threshold reaching at least ``target`` wins.
    """
    cands = torch.cat([torch.tensor([-math.inf], dtype=torch.float64)]
                      + [p.candidates().to(torch.float64) for p in problems])
    cands = torch.unique(cands)                      # sorted

    counts: dict[int, int] = {}                      # the final comparison re-reads probes

    def pruned(i: int) -> int:
        if i not in counts:
            t = float(cands[i])
            counts[i] = sum(p.pruned_at(t) for p in problems)
        return counts[i]

    lo, hi = 0, len(cands) - 1
    if pruned(hi) < target:
        return float(cands[hi])
    while lo < hi:                                    # first index reaching the target
        mid = (lo + hi) // 2
        if pruned(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    if lo > 0 and target - pruned(lo - 1) < pruned(lo) - target:
        lo -= 1
    return float(cands[lo])


def prune_problems(problems: Sequence[ThresholdProblem], amounts: Sequence[float | int] | None,
                   method: str, combine: bool = True, global_amount: float | int | None = None,
                   extra_info: dict[str, Any] | None = None) -> list[float]:
    """Solve and apply: each problem at its own amount, or all at one ``global_amount``.

    Returns:
        The sparsity reached by each problem, counted in its domain.
    """
    if global_amount is not None:
        total = sum(p.total for p in problems)
        threshold = solve_threshold(problems, amount_to_count(global_amount, total))
        thresholds = [threshold] * len(problems)
        amounts = [global_amount] * len(problems)
    else:
        assert amounts is not None and len(amounts) == len(problems)
        thresholds = [solve_threshold([p], amount_to_count(a, p.total))
                      for p, a in zip(problems, amounts)]
    reached = []
    for problem, threshold, amount in zip(problems, thresholds, amounts):
        sparsity = problem.pruned_at(threshold) / max(problem.total, 1)
        info = {"method": method, "amount": amount, "domain": problem.domain,
                "sparsity": sparsity, "scope": "global" if global_amount is not None else "layer",
                **(extra_info or {})}
        for tensor_name, mask in problem.masks_at(threshold).items():
            apply_mask(problem.module, mask, tensor_name, combine=combine, info=info)
        reached.append(sparsity)
    return reached
