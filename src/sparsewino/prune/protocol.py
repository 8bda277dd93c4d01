"""The training-callback protocol: what a trainer calls on each callback, and when.

A trainer calls these duck-typed methods when an object has them (all optional):

* ``on_train_begin(model)`` — once, before the first step;
* ``regularization(model) -> Tensor | None`` — added to the loss of each step;
* ``after_step(model, step)`` — right after each ``optimizer.step()``; ``step`` is the
  0-based index of the step just taken (so ``step + 1`` steps are done);
* ``on_epoch_end(model, epoch)`` — after each epoch; ``epoch`` is the 0-based index of the
  epoch just finished;
* ``on_train_end(model)`` — once, after the last step (before the final evaluation);
* ``state_dict()`` / ``load_state_dict(state)`` — for checkpoints and resumption.

``model`` may be wrapped in DDP/DataParallel; callbacks look through the wrapper.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

__all__ = ["TrainingCallback"]


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

    def on_train_end(self, model: nn.Module) -> None:
        """Called once after the last step."""

    def state_dict(self) -> dict[str, Any]:
        """Resumable state."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
