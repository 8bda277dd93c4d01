"""l2-to-l1 training of adder layers: a callback that anneals their exponent p from 2 to 1."""
from __future__ import annotations

from typing import Any

from torch import nn

from ..nn.adder import check_exponent
from ..nn.winograd_adder import set_exponent

__all__ = ["L2ToL1Schedule"]


class L2ToL1Schedule:
    """Training callback: p of every adder layer goes linearly from ``start`` to ``end``.

    The adder layers compute ``-sum |x - w|^p``. l2-to-l1 training (Li et al., ICML 2021)
    starts from the squared distance (p = 2, whose gradient is the full-precision gradient
    AdderNet uses anyway) and anneals to the l1 distance (p = 1) the layer keeps at
    inference. p reaches ``end`` after ``anneal_fraction`` of ``total_steps`` and stays there.

    Args:
        total_steps: optimizer steps of the training run.
        start, end: exponents in [1, 2].
        anneal_fraction: part of the run over which p changes (0 < f <= 1).

    Examples:
        >>> from sparsewino.nn import WinogradAdderConv2d
        >>> net = nn.Sequential(WinogradAdderConv2d(2, 2, 3))
        >>> schedule = L2ToL1Schedule(total_steps=10, anneal_fraction=0.5)
        >>> schedule.on_train_begin(net); net[0].p
        2.0
        >>> schedule.after_step(net, 1); net[0].p   # 2 of the 5 annealing steps taken
        1.6
        >>> schedule.after_step(net, 7); net[0].p
        1.0
    """

    def __init__(self, total_steps: int, start: float = 2.0, end: float = 1.0,
                 anneal_fraction: float = 0.5) -> None:
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
        if not 0 < anneal_fraction <= 1:
            raise ValueError(f"anneal_fraction must lie in (0, 1], got {anneal_fraction!r}")
        self.start = check_exponent(start, "L2ToL1Schedule start")
        self.end = check_exponent(end, "L2ToL1Schedule end")
        self.total_steps, self.anneal_fraction = total_steps, anneal_fraction
        self.steps_done = 0

    def exponent(self, steps_done: int) -> float:
        """p after ``steps_done`` optimizer steps."""
        span = max(1, round(self.anneal_fraction * self.total_steps))
        progress = min(1.0, steps_done / span)
        return self.start + (self.end - self.start) * progress

    def on_train_begin(self, model: nn.Module) -> None:
        set_exponent(model, self.exponent(self.steps_done))

    def after_step(self, model: nn.Module, step: int) -> None:
        self.steps_done = step + 1
        set_exponent(model, self.exponent(self.steps_done))

    def describe(self) -> str:
        return (f"l2-to-l1: p {self.start:g} -> {self.end:g} over the first "
                f"{self.anneal_fraction:.0%} of {self.total_steps} steps")

    def state_dict(self) -> dict[str, Any]:
        return {"steps_done": self.steps_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_done = int(state["steps_done"])
