"""Measurements of the pipeline: sparsity and multiplications after each step, forward timings."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..nn import WinogradConv2d, WinogradConv3d
from ..prune import stats
from ..timing import median_time
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
              warmup: int, repeats: int) -> dict[str, float]:
    """Median forward times (ms) on ``images`` and the compiled model's speed-ups.

    ``dense_ms``: the registry model of ``architecture`` without its transforms (plain
    ``nn.Conv2d`` layers, freshly built); ``model_ms``: ``model`` (PyTorch layers);
    ``compiled_ms``: ``compiled`` (:func:`sparsewino.engine.compile` of ``model``).
    """
    dense = build_model({**architecture, "transforms": []}).to(images.device).eval()
    model.eval()
    times = {f"{name}_ms": 1e3 * median_time(lambda m=m: m(images), warmup, repeats)
             for name, m in (("dense", dense), ("model", model), ("compiled", compiled))}
    return {**times, "speedup_vs_dense": times["dense_ms"] / times["compiled_ms"],
            "speedup_vs_model": times["model_ms"] / times["compiled_ms"]}
