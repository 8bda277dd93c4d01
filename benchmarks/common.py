"""Shared benchmark helpers: machine description and median timing after warm-up."""
from __future__ import annotations

import platform
import statistics
import time
from typing import Callable

import torch


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def conditions(batch: str | int, warmup: int, runs: int) -> str:
    """One line stating the benchmark conditions."""
    return (f"CPU: {cpu_model()} | torch {torch.__version__} | threads: {torch.get_num_threads()} "
            f"| batch: {batch} | warm-up: {warmup} | runs: {runs} (median)")


def median_time(fn: Callable[[], object], warmup: int = 5, runs: int = 20) -> float:
    """Median wall time in seconds of ``fn()`` over ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
