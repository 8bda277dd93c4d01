"""Progress of a recipe run: stage labels and the estimated time left in the whole run.

The time left is the number of training steps the remaining stages will run (train and
fine-tune stages, one fine-tune per pruning target) times the wall time per training step so
far in this run: everything this process did since it started (evaluations, pruning,
converting and the rest, not only the steps) divided by the steps it trained, so that the work
between the steps is priced in, or the latest training run's seconds per step when that is
slower (fine-tuning Winograd-domain layers is slower per step than training spatial ones).
Stages without training of their own (compile, benchmark, report) are not predicted, and the
message says so: "left in the training stages".
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

from ..train.progress import format_duration
from .schema import PruneStage, TrainStage

__all__ = ["stage_label", "training_steps", "RunClock"]


def stage_label(stage: Any) -> str:
    """``"prune step1"``; just ``"compile"`` when the stage is named after its kind."""
    return stage.kind if stage.name == stage.kind else f"{stage.kind} {stage.name}"


def training_steps(stage: Any, steps_per_epoch: Callable[[int], int], first_unit: int = 0) -> int:
    """Optimizer steps ``stage`` runs from its unit ``first_unit`` on.

    Args:
        steps_per_epoch: batches per epoch of the training data for a batch size.
    """
    def steps(config: Any) -> int:
        return max(1, round(config.epochs * steps_per_epoch(config.batch_size)))

    if isinstance(stage, TrainStage):
        return steps(stage.config) if first_unit == 0 else 0
    if isinstance(stage, PruneStage) and stage.finetune is not None:
        if stage.method == "native" or stage.gradual is not None:
            return steps(stage.finetune) if first_unit == 0 else 0
        return max(0, len(stage.target_list()) - first_unit) * steps(stage.finetune)
    return 0


class RunClock:
    """Seconds per training step measured during a run, and the time left from there."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds, self.steps = 0.0, 0
        self.last_rate = 0.0                       # seconds per step of the latest training run
        self._clock = clock
        self._start = clock()

    def record(self, seconds: float, steps: int) -> None:
        """A training run of ``steps`` new steps took ``seconds``."""
        if steps > 0:
            self.seconds, self.steps = self.seconds + seconds, self.steps + steps
            self.last_rate = seconds / steps

    def seconds_left(self, stages: Sequence[Any], steps_per_epoch: Callable[[int], int],
                     first_unit: int = 0) -> float | None:
        """Estimated seconds for ``stages`` (the first from unit ``first_unit``), or ``None``
        before any step was timed."""
        if self.steps == 0:
            return None
        total = sum(training_steps(stage, steps_per_epoch, first_unit if i == 0 else 0)
                    for i, stage in enumerate(stages))
        elapsed = max(self.seconds, self._clock() - self._start)    # the work between steps too
        # Winograd-domain layers train slower than spatial ones: the latest run's speed, when
        # slower than the average, is the better guess for the stages after it
        return total * max(elapsed / self.steps, self.last_rate)

    def describe_left(self, *args: Any, **kwargs: Any) -> str:
        """``", about 3.5 min left in the training stages"`` (empty when unknown or nothing is
        left)."""
        left = self.seconds_left(*args, **kwargs)
        if left is None or not math.isfinite(left) or left < 1:
            return ""
        return f", about {format_duration(left)} left in the training stages"
