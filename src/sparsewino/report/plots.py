"""PNG plots of a run (matplotlib, Agg backend): accuracy vs sparsity, per-layer bars, heatmaps."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

__all__ = ["plot_accuracy_vs_sparsity", "plot_layer_sparsity", "pyplot"]

_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h")


def _marker_size(index: int, largest: float = 240.0, smallest: float = 14.0) -> float:
    """Marker area of the ``index``-th stage: halving, so coinciding points show as nested rings."""
    return max(largest * 0.5 ** index, smallest)


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (clear error when missing)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("plots need matplotlib: pip install 'sparsewino[pipeline]'") from None
    return plt


def plot_accuracy_vs_sparsity(rows: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Test accuracy against Winograd-domain sparsity, one point per step, in run order.

    Returns:
        ``path``, or ``None`` when no row has both numbers.
    """
    points = [(100 * r["winograd_sparsity"], 100 * r["accuracy"], r["stage"]) for r in rows
              if r.get("winograd_sparsity") is not None and r.get("accuracy") is not None]
    if not points:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.4, 4.2))
    ax.plot([p[0] for p in points], [p[1] for p in points], "-", color="0.7", zorder=1)
    colors = plt.get_cmap("tab10")
    stages = list(dict.fromkeys(p[2] for p in points))
    for index, stage in enumerate(stages):
        chosen = [p for p in points if p[2] == stage]
        # Stages often share a point (an evaluation repeats the last step's numbers): each
        # later stage is drawn smaller and on top, so every marker of the legend stays visible.
        ax.scatter([p[0] for p in chosen], [p[1] for p in chosen], color=colors(index % 10),
                   marker=_MARKERS[index % len(_MARKERS)], s=_marker_size(index),
                   edgecolors="black", linewidths=0.4, label=stage, zorder=2 + index)
    ax.set_xlabel("Winograd-domain sparsity (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs Winograd-domain sparsity across the pipeline")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_layer_sparsity(layers: Sequence[Any], path: str | Path) -> Path | None:
    """Bars of spatial and Winograd-domain sparsity per convolution (``LayerSparsity`` rows)."""
    layers = [l for l in layers if l.spatial_sparsity is not None or l.winograd_sparsity is not None]
    if not layers:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(layers) + 2), 4.0))
    positions = range(len(layers))
    width = 0.4
    spatial = [(p - width / 2, 100 * l.spatial_sparsity) for p, l in zip(positions, layers)
               if l.spatial_sparsity is not None]
    winograd = [(p + width / 2, 100 * l.winograd_sparsity) for p, l in zip(positions, layers)
                if l.winograd_sparsity is not None]
    if spatial:
        ax.bar([x for x, _ in spatial], [v for _, v in spatial], width, label="spatial", color="tab:blue")
    if winograd:
        ax.bar([x for x, _ in winograd], [v for _, v in winograd], width, label="Winograd domain",
               color="tab:orange")
    if len(spatial) < len(layers):
        ax.text(0.01, 0.97, "no spatial bar: Winograd-domain weights (Q only)", transform=ax.transAxes,
                fontsize=7, va="top")
    ax.set_xticks(list(positions))
    ax.set_xticklabels([l.name for l in layers], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("sparsity (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Sparsity per convolution")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
