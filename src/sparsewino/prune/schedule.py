"""Sparsity schedules: step lists (0.2 → 0.4 → 0.6 → 0.8) and gradual cubic (Zhu & Gupta 2017).

A schedule maps a time t (completed optimizer steps or completed epochs, per ``unit``) to the
target amount at that time, or ``None`` before it starts. Any pruning method can follow one
through :class:`sparsewino.prune.PruningCallback`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

__all__ = ["Schedule", "StepSchedule", "CubicSchedule", "UNITS"]

UNITS = ("step", "epoch")


def _check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ValueError(f"schedule unit must be one of {UNITS}, got {unit!r}")
    return unit


class Schedule(ABC):
    """Target amount as a function of time (``unit``: ``"step"`` or ``"epoch"``)."""

    unit: str = "epoch"

    @abstractmethod
    def amount_at(self, time: int) -> float | None:
        """Target amount after ``time`` completed steps/epochs (``None``: not started)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class StepSchedule(Schedule):
    """Amounts applied one after another: ``amounts[i]`` from time ``start + i * every``.

    Args:
        amounts: increasing targets, e.g. ``[0.2, 0.4, 0.6, 0.8]`` (fractions or counts).
        every: time between two steps.
        start: time of the first step (0: before training starts).
        unit: ``"epoch"`` (default) or ``"step"``.

    Examples:
        >>> s = StepSchedule([0.2, 0.4, 0.6], every=2)
        >>> [s.amount_at(t) for t in range(6)]
        [0.2, 0.2, 0.4, 0.4, 0.6, 0.6]
    """

    def __init__(self, amounts: Sequence[float | int], every: int = 1, start: int = 0,
                 unit: str = "epoch") -> None:
        amounts = list(amounts)
        if not amounts:
            raise ValueError("StepSchedule needs at least one amount")
        if any(b < a for a, b in zip(amounts, amounts[1:])):
            raise ValueError(f"StepSchedule amounts must not decrease (masks only grow), got {amounts}")
        if every < 1 or start < 0:
            raise ValueError(f"StepSchedule needs every >= 1 and start >= 0, got {every}, {start}")
        self.amounts, self.every, self.start, self.unit = amounts, every, start, _check_unit(unit)

    @classmethod
    def from_densities(cls, densities: Sequence[float], **kwargs) -> "StepSchedule":
        """Schedule given as densities (Liu et al.: 0.7 → 0.6 → ... → 0.1), i.e. 1 - amount."""
        return cls([1.0 - d for d in densities], **kwargs)

    def amount_at(self, time: int) -> float | None:
        if time < self.start:
            return None
        return self.amounts[min((time - self.start) // self.every, len(self.amounts) - 1)]


class CubicSchedule(Schedule):
    """Gradual pruning of Zhu & Gupta: s_t = s_f + (s_i − s_f)(1 − (t − t₀)/(t₁ − t₀))³.

    Updated every ``every`` units from ``begin`` (t₀), and ``final`` from ``end`` (t₁) on, also
    when ``end − begin`` is not a multiple of ``every``.

    Args:
        final: final sparsity s_f (fraction).
        begin, end: first and last pruning time.
        initial: initial sparsity s_i.
        every: pruning frequency (Δt).
        unit: ``"step"`` (default) or ``"epoch"``.

    Examples:
        >>> s = CubicSchedule(0.8, begin=0, end=4)
        >>> [round(s.amount_at(t), 4) for t in range(6)]
        [0.0, 0.4625, 0.7, 0.7875, 0.8, 0.8]
    """

    def __init__(self, final: float, begin: int, end: int, initial: float = 0.0, every: int = 1,
                 unit: str = "step") -> None:
        if not (0.0 <= initial <= final <= 1.0):
            raise ValueError(f"CubicSchedule needs 0 <= initial <= final <= 1, got "
                             f"initial={initial}, final={final}")
        if not (0 <= begin < end) or every < 1:
            raise ValueError(f"CubicSchedule needs 0 <= begin < end and every >= 1, got "
                             f"begin={begin}, end={end}, every={every}")
        self.final, self.initial, self.begin, self.end = final, initial, begin, end
        self.every, self.unit = every, _check_unit(unit)

    def amount_at(self, time: int) -> float | None:
        if time < self.begin:
            return None
        if time >= self.end:                # final from ``end`` on, whatever ``every`` is
            return self.final
        t = self.begin + (time - self.begin) // self.every * self.every
        progress = (t - self.begin) / (self.end - self.begin)
        return self.final + (self.initial - self.final) * (1.0 - progress) ** 3
