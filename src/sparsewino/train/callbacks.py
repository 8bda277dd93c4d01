"""Dispatch of the duck-typed training-callback protocol used by pruning methods.

:func:`sparsewino.train.fit` calls these methods when a callback defines them (all optional;
:class:`sparsewino.prune.TrainingCallback` spells them out):

- ``on_train_begin(model)``: once, before the first step; on a resume, after the weights and
  the callback's own state (``load_state_dict``) have been restored, so a callback can tell a
  resumed run from a new one;
- ``regularization(model) -> Tensor | None``: added to the loss of every step;
- ``after_step(model, step)``: right after each ``optimizer.step()``; ``step`` is the 0-based
  index of the step just taken in this run;
- ``on_epoch_end(model, epoch)``: after each epoch (0-based; also after a final partial one);
- ``on_train_end(model)``: once after the last step, before the final evaluation;
- ``state_dict()`` / ``load_state_dict(d)``: saved in checkpoints (plain data and tensors).

``model`` is always the bare model, never the DistributedDataParallel wrapper.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

__all__ = ["call_callbacks", "regularization_of", "callback_states",
           "load_callback_states"]


def call_callbacks(callbacks: Iterable[Any], method: str, *args: Any) -> None:
    """Call ``method(*args)`` on every callback that defines it."""
    for callback in callbacks:
        function = getattr(callback, method, None)
        if function is not None:
            function(*args)


def regularization_of(callbacks: Iterable[Any], model: nn.Module) -> torch.Tensor | None:
    """Sum of the callbacks' ``regularization(model)`` terms (``None`` when there are none)."""
    total = None
    for callback in callbacks:
        function = getattr(callback, "regularization", None)
        term = function(model) if function is not None else None
        if term is not None:
            total = term if total is None else total + term
    return total


def callback_states(callbacks: Iterable[Any]) -> list[Any]:
    """``state_dict()`` of each callback (``None`` for callbacks without one)."""
    return [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in callbacks]


def load_callback_states(callbacks: list[Any], states: list[Any]) -> None:
    """Restore callback states saved by :func:`callback_states`."""
    if len(states) != len(callbacks):
        raise ValueError(f"checkpoint holds {len(states)} callback states but this run has "
                         f"{len(callbacks)} callbacks; resume with the same pruning configuration")
    for callback, state in zip(callbacks, states):
        if state is not None and hasattr(callback, "load_state_dict"):
            callback.load_state_dict(state)
