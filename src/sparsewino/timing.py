"""Timing helpers shared by the pipeline, the CLI and the benchmarks: CPU name, median time."""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["cpu_model", "median_time"]


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where available)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_time(function: Callable[[], Any], warmup: int = 5, repeats: int = 20) -> float:
    """Median wall time in seconds of ``function()`` (under ``torch.no_grad``) over ``repeats``
    calls after ``warmup`` untimed calls."""
    with torch.no_grad():
        for _ in range(warmup):
            function()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
    return statistics.median(times)
