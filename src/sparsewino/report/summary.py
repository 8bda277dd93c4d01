"""The run report: summary.md with headline numbers and tables, CSV/JSON, PNG plots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..files import write_text_atomic
from ..prune import plot_position_sparsity, stats
from ..timing import busy_warning, cpu_model, describe_speedup
from .plots import plot_accuracy_vs_sparsity, plot_layer_sparsity
from .tables import format_value, rows_to_csv, rows_to_json, rows_to_markdown

__all__ = ["write_report", "headline"]


def headline(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Baseline and final numbers of a run.

    ``baseline_accuracy``: the first ``train`` row; ``final_*``: the last row that has the
    number; ``speedup_*``, timings and their spread (``machine_busy``): the last benchmark.
    """
    def last(key: str) -> Any:
        return next((r[key] for r in reversed(rows) if r.get(key) is not None), None)

    baseline = next((r for r in rows if r.get("kind") == "train" and r.get("accuracy") is not None), None)
    bench = next((r for r in reversed(rows) if r.get("speedup_vs_dense") is not None), {})
    return {"baseline_accuracy": baseline["accuracy"] if baseline else None,
            "final_accuracy": last("accuracy"), "final_compiled_accuracy": last("compiled_accuracy"),
            "winograd_sparsity": last("winograd_sparsity"), "spatial_sparsity": last("spatial_sparsity"),
            "reduction_vs_direct": last("reduction_vs_direct"),
            "reduction_vs_winograd": last("reduction_vs_winograd"),
            "reduction_dynamic": last("reduction_dynamic"),
            "speedup_vs_dense": bench.get("speedup_vs_dense"), "speedup_low": bench.get("speedup_low"),
            "speedup_high": bench.get("speedup_high"), "repeats": bench.get("repeats"),
            "timing_spread": bench.get("timing_spread"), "machine_busy": bench.get("machine_busy"),
            "cpu_flags": bench.get("cpu_flags"), "dense_ms": bench.get("dense_ms"),
            "compiled_ms": bench.get("compiled_ms"), "benchmark_batch": bench.get("batch_size"),
            "benchmark_threads": bench.get("threads")}


def speedup_cell(numbers: dict[str, Any]) -> str:
    """The headline's speed-up: median, quartiles of the runs, and a mark when the machine was busy."""
    if numbers.get("speedup_vs_dense") is None:
        return "-"
    return describe_speedup(numbers) + (" (machine busy: uncertain)" if numbers.get("machine_busy") else "")


def write_report(directory: str | Path, rows: Sequence[dict[str, Any]], model: nn.Module | None = None,
                 input_shape: Sequence[int] | None = None, tile: int = 4, recipe: Any = None,
                 plots: bool = True, title: str | None = None) -> Path:
    """Write ``summary.md``, ``results.csv``, ``results.json``, ``layers.json`` and PNG plots.

    Args:
        directory: output directory (created).
        rows: result rows of the run (see :func:`sparsewino.recipes.run_recipe`).
        model: the final model, for the per-layer table and plots (optional).
        input_shape: ``(1, C, H, W)`` for multiplication counts of the per-layer table.
        tile: Winograd tile assumed for plain convolutions in the statistics.
        recipe: the :class:`~sparsewino.recipes.Recipe` (name, description, data, model).
        plots: also write the PNG plots (matplotlib, Agg backend).
        title: heading (default: the recipe name).

    Returns:
        Path of ``summary.md``.

    Examples:
        >>> write_report("runs/demo/report", result.rows, model=model, input_shape=(1, 1, 28, 28))  # doctest: +SKIP
        PosixPath('runs/demo/report/summary.md')
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    numbers = headline(rows)
    layer_report = stats(model, input_shape=input_shape, tile=tile) if model is not None else None
    write_text_atomic(directory / "results.csv", rows_to_csv(rows))
    write_text_atomic(directory / "results.json", rows_to_json(rows, headline=numbers))
    if layer_report is not None:
        write_text_atomic(directory / "layers.json", json.dumps(layer_report.to_dict(), indent=1, default=str))
    images: list[tuple[str, Path]] = []
    if plots:
        made = plot_accuracy_vs_sparsity(rows, directory / "accuracy_vs_sparsity.png")
        if made:
            images.append(("Accuracy vs Winograd-domain sparsity", made))
        if layer_report is not None:
            made = plot_layer_sparsity(layer_report.layers, directory / "layer_sparsity.png")
            if made:
                images.append(("Sparsity per layer (final model)", made))
            if any(l.position_sparsity is not None for l in layer_report.layers):
                heatmap = directory / "position_sparsity.png"
                plot_position_sparsity(layer_report, str(heatmap),
                                       title="Winograd-domain sparsity per position (final model)")
                images.append(("Winograd-domain sparsity per position", heatmap))
    name = title or (getattr(recipe, "name", None) or "sparsewino run")
    lines = [f"# {name}", ""]
    if recipe is not None:
        if getattr(recipe, "description", ""):
            lines += [recipe.description.strip(), ""]
        lines += [f"- data: `{recipe.data.dataset}`, model: `{recipe.model.name}`, Winograd tile "
                  f"F({recipe.tile}x{recipe.tile}, r x r) by default", ""]
    lines += ["## Headline", "",
              "| baseline accuracy | final accuracy | Winograd-domain sparsity | mult. reduction vs direct "
              "| vs dense Winograd | compiled speed-up vs dense PyTorch |",
              "|---:|---:|---:|---:|---:|---:|",
              "| " + " | ".join([format_value(numbers["baseline_accuracy"], "pct2"),
                                 format_value(numbers["final_accuracy"], "pct2"),
                                 format_value(numbers["winograd_sparsity"], "pct1"),
                                 format_value(numbers["reduction_vs_direct"], "x"),
                                 format_value(numbers["reduction_vs_winograd"], "x"),
                                 speedup_cell(numbers)]) + " |", ""]
    if numbers["reduction_dynamic"] is not None:
        lines += [f"With the activation sparsity of the Winograd-ReLU layers (both operands non-zero, "
                  f"measured on test images): {format_value(numbers['reduction_dynamic'], 'x')} fewer "
                  "multiplications than direct convolution.", ""]
    if numbers["speedup_vs_dense"] is not None:
        flags = f"; flags {numbers['cpu_flags']}" if numbers.get("cpu_flags") else ""
        lines += [f"Speed: median forward time of a batch of {numbers['benchmark_batch']} with "
                  f"{numbers['benchmark_threads']} thread(s): dense PyTorch {numbers['dense_ms']:.2f} ms, "
                  f"compiled sparse model {numbers['compiled_ms']:.2f} ms; speed-up "
                  f"{describe_speedup(numbers)}, the median of the ratios of interleaved runs with its "
                  f"quartiles ({cpu_model()}{flags}, torch {torch.__version__}).", ""]
        warning = busy_warning(numbers)
        if warning:
            lines += [f"**Warning**: {warning.removeprefix('warning: ')}.", ""]
    lines += ["Multiplications count the convolutions' element-wise stage (transforms excluded, as in "
              "the papers); 'direct' is the dense spatial convolution.", "",
              "## Steps", "", rows_to_markdown(rows), ""]
    if layer_report is not None:
        lines += ["## Final model, per convolution", "", "```", str(layer_report), "```", ""]
    for caption, path in images:
        lines += [f"## {caption}", "", f"![{caption}]({path.name})", ""]
    lines += ["Files: `results.csv`, `results.json` (rows + headline)"
              + (", `layers.json`" if layer_report is not None else "") + "."]
    summary = directory / "summary.md"
    write_text_atomic(summary, "\n".join(lines) + "\n")
    return summary
