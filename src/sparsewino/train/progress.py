"""Progress of training: a tqdm bar on a terminal, log lines (with the time left) otherwise.

``make demo > log`` used to print nothing for minutes: the bar goes to stderr and only on a
terminal. When stdout is not a terminal, :class:`ProgressLines` logs one line every tenth of
a training run on the ``sparsewino.progress`` logger (the CLI sends it to stdout; library
users route it with :mod:`logging` like any other logger).
"""
from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any, Callable

__all__ = ["progress_bar", "show_progress", "show_progress_lines", "ProgressLines",
           "format_duration", "log_progress_to_stdout", "PROGRESS_LOGGER"]

#: Name of the logger of progress lines.
PROGRESS_LOGGER = "sparsewino.progress"
logger = logging.getLogger(PROGRESS_LOGGER)


class _NoBar:
    """Stand-in when tqdm is not installed or the bar is disabled."""

    def update(self, *args: Any) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, **kwargs: Any) -> Any:
    """A tqdm bar when ``enabled`` and tqdm is installed, else a silent stand-in."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(**kwargs)


def show_progress(progress: bool, ctx: Any) -> bool:
    """Progress bars only when asked, on rank 0, and when stderr is a terminal."""
    return bool(progress and ctx.is_main and sys.stderr.isatty())


def show_progress_lines(progress: bool, ctx: Any) -> bool:
    """Progress lines when asked, on rank 0, and when stdout is not a terminal (a log file)."""
    return bool(progress and ctx.is_main and not sys.stdout.isatty())


def format_duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressLines:
    """One log line each ``fraction`` of a run's steps (and at its end), with the time left.

    Args:
        stage: name at the start of each line.
        total_steps: steps of the whole run.
        start_step: steps already done (a resumed run); the speed counts only this session's.
        steps_per_epoch: to show the epoch.
        fraction: a line every this fraction of ``total_steps`` (0.1: ten lines).
        min_interval: seconds between two lines at least (the last line always comes).
        clock: time source (tests).

    Examples:
        >>> lines = ProgressLines("baseline", total_steps=300, steps_per_epoch=100, clock=lambda: 0)
        >>> lines.update(30, loss=0.52, lr=0.05).startswith("baseline: 10% (step 30/300")  # and logs it
        True
    """

    def __init__(self, stage: str, total_steps: int, start_step: int = 0, steps_per_epoch: int = 0,
                 fraction: float = 0.1, min_interval: float = 10.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.stage, self.total, self.steps_per_epoch = stage, max(total_steps, 1), steps_per_epoch
        self.every = max(1, math.ceil(fraction * self.total))
        self.min_interval, self.clock = min_interval, clock
        self.start_step, self.started = start_step, clock()
        self.next_step = (start_step // self.every + 1) * self.every
        self.last_time = -math.inf

    def seconds_left(self, step: int) -> float | None:
        """Estimated seconds to the last step, from this session's speed (``None`` before a step)."""
        done = step - self.start_step
        if done <= 0:
            return None
        return (self.clock() - self.started) / done * (self.total - step)

    def update(self, step: int, **values: float) -> str | None:
        """Record that ``step`` steps are done; log (and return) a line when one is due."""
        final = step >= self.total
        if step < self.next_step and not final:
            return None
        self.next_step = (step // self.every + 1) * self.every
        now = self.clock()
        if not final and now - self.last_time < self.min_interval:
            return None
        self.last_time = now
        parts = [f"step {step}/{self.total}"]
        if self.steps_per_epoch:
            parts.append(f"epoch {step / self.steps_per_epoch:.2f}/{self.total / self.steps_per_epoch:.2f}")
        text = f"{self.stage}: {100 * step / self.total:.0f}% ({', '.join(parts)})"
        text += "".join(f", {name} {value:.3g}" for name, value in values.items())
        text += f", {format_duration(now - self.started)}"
        left = self.seconds_left(step)
        if not final and left is not None:
            text += f", about {format_duration(left)} left"
        logger.info("%s", text)
        return text


class _StdoutHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stdout`` is at the time of each record."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def log_progress_to_stdout(enabled: bool = True) -> None:
    """Send the progress lines to stdout (``enabled``) or silence them (the CLI's ``--quiet``)."""
    logger.handlers = [h for h in logger.handlers if not isinstance(h, _StdoutHandler)]
    if enabled:
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("  %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if enabled else logging.WARNING)
    logger.propagate = False
