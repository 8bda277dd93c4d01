"""Timing helpers shared by the pipeline, the CLI and the benchmarks: CPU name and flags,
median times, interleaved comparisons with their spread."""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

__all__ = ["cpu_model", "cpu_flags", "median_time", "interleaved_times", "quartiles",
           "describe_speedup", "busy_warning", "BUSY_SPREAD"]

#: Interquartile range / median of repeated timings above which the machine was busy (other
#: processes took the cores), so one run's ratio says little.
BUSY_SPREAD = 0.2

#: The instruction-set flags that decide the speed of the kernels.
_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq",
          "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile", "asimd", "sve")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where available)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The CPU's vector instruction flags that matter here (``"sse4_2 avx avx2 fma"``), or ``""``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                present = set(line.split(":", 1)[1].split())
                return " ".join(flag for flag in _FLAGS if flag in present)
    except OSError:
        pass
    return ""


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) of ``values``."""
    values = sorted(values)
    if len(values) == 1:
        return values[0], values[0], values[0]
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, median, high


def interleaved_times(functions: dict[str, Callable[[], Any]], warmup: int = 3,
                      repeats: int = 10) -> dict[str, list[float]]:
    """Wall times in seconds of each function, timed in turns (under ``torch.no_grad``).

    Each of the ``repeats`` rounds calls every function once, so a burst of load on the
    machine hits all of them alike; the per-round ratios then stay comparable.
    """
    with torch.no_grad():
        for _ in range(warmup):
            for function in functions.values():
                function()
        times: dict[str, list[float]] = {name: [] for name in functions}
        for _ in range(repeats):
            for name, function in functions.items():
                start = time.perf_counter()
                function()
                times[name].append(time.perf_counter() - start)
    return times


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


def describe_speedup(values: dict[str, Any]) -> str:
    """``"4.70x (4.52-4.95x over 10 runs)"``: a speed-up with the quartiles of its runs.

    ``values``: :func:`sparsewino.recipes.measure.benchmark`'s result, or a run's row.
    """
    text = f"{values['speedup_vs_dense']:.2f}x"
    if values.get("speedup_low") is not None and values.get("repeats", 1) > 1:
        text += f" ({values['speedup_low']:.2f}-{values['speedup_high']:.2f}x over {values['repeats']} runs)"
    return text


def busy_warning(values: dict[str, Any]) -> str | None:
    """A warning when the timings of a benchmark varied too much to trust, else ``None``."""
    if not values.get("machine_busy"):
        return None
    return (f"warning: the timings varied by {100 * values['timing_spread']:.0f}% between runs "
            f"(interquartile range / median; over {100 * BUSY_SPREAD:.0f}% means the machine was "
            "busy): the speed-up is uncertain; rerun `sparsewino bench` on an idle machine")
