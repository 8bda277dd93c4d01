"""Shared benchmark helpers: the conditions line (timing itself lives in sparsewino.timing)."""
from __future__ import annotations

import torch

from sparsewino.timing import cpu_model, median_time

__all__ = ["conditions", "cpu_model", "median_time"]


def conditions(batch: str | int, warmup: int, runs: int) -> str:
    """One line stating the benchmark conditions."""
    return (f"CPU: {cpu_model()} | torch {torch.__version__} | threads: {torch.get_num_threads()} "
            f"| batch: {batch} | warm-up: {warmup} | runs: {runs} (median)")
