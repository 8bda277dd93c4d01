"""Training-time pruning: any method on a schedule, as a training callback.

:class:`PruningCallback` prunes with any method on a schedule; the protocol it follows (and
:class:`TrainingCallback`, re-exported here) is in :mod:`sparsewino.prune.protocol`.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from .layers import NameFilter
from .methods.base import MethodSpec
from .model import prune_model, resolve_method
from .protocol import TrainingCallback
from .schedule import Schedule

__all__ = ["TrainingCallback", "PruningCallback"]


class PruningCallback(TrainingCallback):
    """Prune a model with any method following a schedule during training.

    Args:
        method: method name (see :func:`~sparsewino.prune.prune_model`) or ``MethodSpec``.
        schedule: a :class:`~sparsewino.prune.StepSchedule` or
            :class:`~sparsewino.prune.CubicSchedule`; its ``unit`` says whether it counts
            optimizer steps or epochs.
        overrides, include, exclude, scope, name, **options: as in ``prune_model``
            (override amounts are fixed, not scheduled).

    Examples:
        >>> callback = PruningCallback("spatial_winograd", StepSchedule([0.2, 0.4, 0.6, 0.8]),
        ...                            exclude=["features.0"])          # doctest: +SKIP
        >>> train(model, loader, callbacks=[callback])                  # doctest: +SKIP
    """

    def __init__(self, method: str | MethodSpec, schedule: Schedule, *,
                 overrides: Mapping[str, float | int] | None = None, include: NameFilter = None,
                 exclude: NameFilter = None, scope: str = "layer", name: str = "weight",
                 **options: Any) -> None:
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a StepSchedule/CubicSchedule, got {type(schedule).__name__}")
        self.method, self.schedule = resolve_method(method), schedule
        self.kwargs = dict(overrides=overrides, include=include, exclude=exclude, scope=scope,
                           name=name, **options)
        self.applied: float | int | None = None
        self.history: list[tuple[int, float | int]] = []     # (time, amount) of each pruning

    def _update(self, model: nn.Module, time: int) -> None:
        amount = self.schedule.amount_at(time)
        if amount is None or amount == self.applied:
            return
        prune_model(model, self.method, amount, **self.kwargs)
        self.applied = amount
        self.history.append((time, amount))

    def on_train_begin(self, model: nn.Module) -> None:
        if self.applied is None:            # a resumed run keeps the masks it has
            self._update(model, 0)

    def after_step(self, model: nn.Module, step: int) -> None:
        if self.schedule.unit == "step":
            self._update(model, step + 1)

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        if self.schedule.unit == "epoch":
            self._update(model, epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        return {"applied": self.applied, "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.applied = state.get("applied")
        self.history = [tuple(h) for h in state.get("history", [])]
