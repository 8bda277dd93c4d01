"""Measurements of the pipeline: sparsity and multiplications after each step, forward timings."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..nn import WinogradConv2d, WinogradConv3d
from ..prune import stats
from ..timing import BUSY_SPREAD, cpu_flags, interleaved_times, quartiles
from .architecture import build_model

__all__ = ["sparsity_summary", "benchmark"]


def sparsity_summary(model: nn.Module, input_shape: tuple[int, ...], tile: int,
                     inputs: torch.Tensor | None = None) -> dict[str, Any]:
    """Spatial and Winograd-domain sparsity of the convolutions and their multiplication counts.

    ``reduction_vs_direct`` = direct (dense spatial) multiplications / sparse multiplications;
    ``reduction_vs_winograd`` = dense Winograd multiplications / sparse multiplications
    (transforms excluded, as in the papers; convolutions only). Plain stride-1 convolutions
    are counted as if converted with ``tile``. For models with Winograd-ReLU layers and real
    ``inputs``, ``reduction_dynamic`` counts only the multiplications whose weight *and*
    ReLU-ed transformed input are both non-zero (:func:`sparsewino.engine.count`; Liu et al.'s
    measure), with ``activation_density`` the non-zero fraction of those inputs. When
    ``nn.Linear`` layers have zeros, ``linear_sparsity`` is their fraction of zero weights.
    """
    report = stats(model, input_shape=input_shape, tile=tile)
    totals = report.totals
    out: dict[str, Any] = {
        "spatial_sparsity": totals.get("spatial_sparsity"),
        "winograd_sparsity": totals.get("winograd_sparsity"),
    }
    if totals.get("linear_sparsity"):           # fully connected layers pruned (magnitude, layers: linear)
        out["linear_sparsity"] = totals["linear_sparsity"]
    if "sparse_multiplications" in totals:
        direct, dense, sparse = (totals["direct_multiplications"], totals["dense_multiplications"],
                                 totals["sparse_multiplications"])
        out.update({"direct_mults": direct, "winograd_mults": dense, "sparse_mults": sparse,
                    "reduction_vs_direct": direct / sparse if sparse else None,
                    "reduction_vs_winograd": dense / sparse if sparse else None})
    relu_layers = [m for m in model.modules()
                   if isinstance(m, (WinogradConv2d, WinogradConv3d)) and m.winograd_relu]
    if relu_layers and inputs is not None:
        from ..engine import count
        counts = count(model, tuple(inputs.shape), inputs=inputs)
        out["reduction_dynamic"] = counts.reduction["dynamic"]
        densities = [l.activation_density for l in counts if l.kind == "winograd-relu"]
        out["activation_density"] = sum(densities) / len(densities) if densities else None
    return out


def benchmark(architecture: dict[str, Any], model: nn.Module, compiled: nn.Module, images: torch.Tensor,
              warmup: int, repeats: int) -> dict[str, Any]:
    """Median forward times (ms) on ``images`` and the compiled model's speed-ups, with spreads.

    ``dense_ms``: the registry model of ``architecture`` without its transforms (plain
    ``nn.Conv2d`` layers, freshly built); ``model_ms``: ``model`` (PyTorch layers);
    ``compiled_ms``: ``compiled`` (:func:`sparsewino.engine.compile` of ``model``). The three
    run in turns (:func:`~sparsewino.timing.interleaved_times`); ``speedup_vs_dense`` is the
    median of the per-round ratios dense / compiled, ``speedup_low``/``speedup_high`` their
    quartiles, ``timing_spread`` the largest interquartile range / median of the three times,
    and ``machine_busy`` says that it exceeds :data:`~sparsewino.timing.BUSY_SPREAD` (another
    process took the cores: the numbers are uncertain). ``cpu_flags`` names the vector
    instructions of the CPU.
    """
    dense = build_model({**architecture, "transforms": []}).to(images.device).eval()
    model.eval()
    runs = {"dense": dense, "model": model, "compiled": compiled}
    times = interleaved_times({name: (lambda m=m: m(images)) for name, m in runs.items()}, warmup, repeats)
    result: dict[str, Any] = {}
    spreads = []
    for name, values in times.items():
        low, median, high = quartiles(values)
        result[f"{name}_ms"] = 1e3 * median
        spreads.append((high - low) / median)
    ratios = [d / c for d, c in zip(times["dense"], times["compiled"])]
    low, median, high = quartiles(ratios)
    spread = max(spreads)
    return {**result, "speedup_vs_dense": median, "speedup_low": low, "speedup_high": high,
            "speedup_vs_model": quartiles([m / c for m, c in zip(times["model"], times["compiled"])])[1],
            "repeats": repeats, "timing_spread": spread, "machine_busy": spread > BUSY_SPREAD,
            "cpu_flags": cpu_flags()}
