"""Training-time pruning: the callback protocol trainers call, and schedule-driven pruning.

A trainer calls these duck-typed methods when an object has them (all optional):

* ``on_train_begin(model)`` — once, before the first step;
* ``regularization(model) -> Tensor | None`` — added to the loss of each step;
* ``after_step(model, step)`` — right after each ``optimizer.step()``; ``step`` is the
  0-based index of the step just taken (so ``step + 1`` steps are done);
* ``on_epoch_end(model, epoch)`` — after each epoch; ``epoch`` is the 0-based index of the
  epoch just finished;
* ``state_dict()`` / ``load_state_dict(state)`` — for checkpoints and resumption.

``model`` may be wrapped in DDP/DataParallel; callbacks look through the wrapper.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .layers import NameFilter
from .methods.base import MethodSpec
from .model import prune_model
from .schedule import Schedule

__all__ = ["TrainingCallback", "PruningCallback"]


class TrainingCallback:
    """Base class spelling out the protocol; every method is a no-op by default."""

    def on_train_begin(self, model: nn.Module) -> None:
        """Called once before training starts."""

    def regularization(self, model: nn.Module) -> torch.Tensor | None:
        """Extra loss term for the current step (``None``: nothing)."""
        return None

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called right after optimizer step ``step`` (0-based)."""

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        """Called after epoch ``epoch`` (0-based) ends."""

    def state_dict(self) -> dict[str, Any]:
        """Resumable state."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


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
        self.method, self.schedule = method, schedule
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
