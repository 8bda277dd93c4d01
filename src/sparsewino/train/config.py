"""Training configuration: optimizer, learning-rate schedule and loop options (validated)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..schema import NO_RESULT_CHANGE, check_range

__all__ = ["OptimizerConfig", "ScheduleConfig", "DistillConfig", "TrainConfig", "build_optimizer",
           "lr_factor"]


@dataclass
class OptimizerConfig:
    """Optimizer: ``sgd`` (momentum, nesterov), ``adam`` or ``adamw``.

    ``weight_decay`` applies to every parameter (as in the papers' code).
    """

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        check_range("lr", self.lr, 0, low_open=True)
        check_range("momentum", self.momentum, 0, 1, high_open=True)
        check_range("weight_decay", self.weight_decay, 0)
        for beta in self.betas:
            check_range("betas", beta, 0, 1, high_open=True)
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs optimizer 'sgd' with momentum > 0")


@dataclass
class ScheduleConfig:
    """Learning-rate schedule over the steps of one training/fine-tuning run.

    ``constant``; ``cosine`` (to ``final_fraction`` of the base lr); ``linear`` (linear decay to
    ``final_fraction``); ``step`` (times ``gamma`` every ``step_epochs``); ``multistep``
    (times ``gamma`` at each of ``milestones``, in epochs). ``warmup_epochs`` ramps linearly
    from 0 first. Epochs may be fractional.
    """

    name: Literal["constant", "cosine", "linear", "step", "multistep"] = "constant"
    warmup_epochs: float = 0.0
    final_fraction: float = 0.0
    step_epochs: float = 1.0
    gamma: float = 0.1
    milestones: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_range("warmup_epochs", self.warmup_epochs, 0)
        check_range("final_fraction", self.final_fraction, 0, 1)
        check_range("step_epochs", self.step_epochs, 0, low_open=True)
        check_range("gamma", self.gamma, 0, low_open=True)
        for milestone in self.milestones:
            check_range("milestones", milestone, 0)
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing, got {self.milestones}")


@dataclass
class DistillConfig:
    """Knowledge distillation (Hinton et al.) from a teacher model while training.

    The loss becomes ``(1 - weight) * CE(z, y) + weight * T² * KL(softmax(t/T) ‖ softmax(z/T))``
    with the student's logits z, the teacher's t and T = ``temperature``. In recipes the teacher
    is the dense model: the one before the first prune or convert stage.
    """

    weight: float = 0.5
    temperature: float = 4.0

    def __post_init__(self) -> None:
        check_range("weight", self.weight, 0, 1)
        check_range("temperature", self.temperature, 0, low_open=True)


@dataclass
class TrainConfig:
    """One training or fine-tuning run.

    Attributes:
        epochs: passes over the training set (fractions allowed: 0.5 = half an epoch).
        batch_size: images per step on each process (global batch = batch_size x world size).
        optimizer, schedule: see :class:`OptimizerConfig`, :class:`ScheduleConfig`.
        label_smoothing: cross-entropy label smoothing (off by default).
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        seed: seed of data order, augmentation and dropout (reproducible runs).
        checkpoint_every: also checkpoint every this many steps (epoch ends always are).
        eval_every_epoch: evaluate on the test loader after every epoch (else only at the end).
        log_every: steps between metric lines (``metrics.jsonl``).
        distill: learn from a teacher's outputs too (:class:`DistillConfig`; ``fit(teacher=...)``).
    """

    epochs: float = 1.0
    batch_size: int = 128
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    seed: int = 0
    checkpoint_every: int | None = field(default=None, metadata=NO_RESULT_CHANGE)
    eval_every_epoch: bool = True
    log_every: int = field(default=50, metadata=NO_RESULT_CHANGE)
    distill: DistillConfig | None = None

    def __post_init__(self) -> None:
        check_range("epochs", self.epochs, 0, low_open=True)
        check_range("batch_size", self.batch_size, 1)
        check_range("label_smoothing", self.label_smoothing, 0, 1, high_open=True)
        check_range("grad_clip", self.grad_clip, 0, low_open=True)
        check_range("checkpoint_every", self.checkpoint_every, 1)
        check_range("log_every", self.log_every, 1)


def build_optimizer(parameters, config: OptimizerConfig) -> torch.optim.Optimizer:
    """The optimizer described by ``config`` over ``parameters`` (trainable ones only)."""
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov, weight_decay=config.weight_decay)
    cls = torch.optim.Adam if config.name == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)


def lr_factor(schedule: ScheduleConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rate at 0-based ``step`` of ``total_steps``.

    Examples:
        >>> lr_factor(ScheduleConfig("cosine"), 0, 10, 5), lr_factor(ScheduleConfig("cosine"), 10, 10, 5)
        (1.0, 0.0)
    """
    warmup = round(schedule.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    epoch = step / steps_per_epoch
    span = max(total_steps - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    low = schedule.final_fraction
    if schedule.name == "cosine":
        return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule.name == "linear":
        return 1 - (1 - low) * progress
    if schedule.name == "step":
        return schedule.gamma ** math.floor(epoch / schedule.step_epochs + 1e-9)
    if schedule.name == "multistep":
        return schedule.gamma ** sum(epoch + 1e-9 >= m for m in schedule.milestones)
    return 1.0
