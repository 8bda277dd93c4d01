"""Sparsity in both domains: per layer, per Winograd position, and totals weighted by multiplications.

For every convolution of a model (and every ``nn.Linear``, with its sparsity only; the totals of
the convolutions leave them out, ``linear_sparsity`` sums them up): the spatial sparsity (zeros of
the effective spatial weight; undefined for Winograd-domain layers), the Winograd-domain sparsity (exact zeros of the
effective Q = G g Gᵀ, computed in float64; of U·V for low-rank layers, whose pruned columns are
whole zero positions), the per-position sparsity map (n×n, or n×n×n; one map per piece,
``(S, n, n)``, for DWM layers, with the sparsity of each piece), and, given an input shape, the
multiplications of a dense and of a sparse execution.

Every layer is read through its layer kind (:mod:`sparsewino.nn.kinds`): its effective weight
and domain, the parameter its pruning method is recorded on, its rank. Adder layers (kinds with
``adder=True``) get rows with their sparsity and exponent ``p`` but no multiplications, and stay
out of the totals (``engine.count`` counts their additions).

Plain convolutions that ``convert`` could turn into Winograd layers are measured as if run
with F(``tile``, r) and default points (``tile=4`` by default, DWM pieces for strided and large
kernels, marked "assumed" in the table): their Winograd sparsity is what conversion would give.
Other convolutions (1×1, dilated) have spatial numbers only.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from ..nn.convert import describe
from ..nn.functional import winograd_weight
from ..nn.kinds import adder_layer_types, kind_of
from ..winograd.algorithm import conv_multiplications
from .criteria import effective
from .layers import conv_layer_types, is_winograd_layer, winograd_view
from .mask import pruning_info

__all__ = ["LayerSparsity", "SparsityReport", "stats", "plot_position_sparsity"]


@dataclass
class LayerSparsity:
    """Sparsity of one convolution (``None`` where a number does not apply)."""

    name: str
    kind: str
    domain: str                               # "spatial", "winograd", "conv" (plain torch) or "linear"
    algorithm: str | None
    weights: int | None
    spatial_sparsity: float | None
    winograd_weights: int | None
    winograd_sparsity: float | None
    position_sparsity: torch.Tensor | None = field(repr=False)
    multiplications: dict[str, float] | None = None
    method: str | None = None
    rank: int | None = None                   # low-rank Winograd layers (W = u·v)
    piece_sparsity: list[float] | None = None    # DWM layers: Winograd sparsity of each piece's Q
    exponent: float | None = None             # adder layers (-sum |x - w|^p): p; no multiplications

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.position_sparsity is not None:
            out["position_sparsity"] = self.position_sparsity.tolist()
        return out


@dataclass
class SparsityReport:
    """Per-convolution :class:`LayerSparsity` rows (``layers``), rows of the ``nn.Linear`` layers
    (``linear``) and model totals; ``str()`` gives a table."""

    layers: list[LayerSparsity]
    totals: dict[str, float]
    linear: list[LayerSparsity] = field(default_factory=list)

    def __getitem__(self, name: str) -> LayerSparsity:
        for layer in [*self.layers, *self.linear]:
            if layer.name == name:
                return layer
        raise KeyError(f"no convolution or linear layer named {name!r}; layers: "
                       f"{[l.name for l in [*self.layers, *self.linear]]}")

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [l.to_dict() for l in self.layers], "totals": dict(self.totals),
                "linear": [l.to_dict() for l in self.linear]}

    def __str__(self) -> str:
        def pct(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.1f}%"

        rows = [("layer", "type", "algorithm", "spatial", "winograd", "mults (M) dense→sparse", "method")]
        for l in [*self.layers, *self.linear]:
            mults = "-"
            if l.multiplications:
                m = l.multiplications
                mults = f"{m['dense'] / 1e6:.2f} → {m['sparse'] / 1e6:.2f}"
            rows.append((l.name, f"{l.kind}/{l.domain}", l.algorithm or "-", pct(l.spatial_sparsity),
                         pct(l.winograd_sparsity), mults, l.method or "-"))
        t = self.totals
        total_mults = "-"
        if "dense_multiplications" in t:
            total_mults = (f"{t['dense_multiplications'] / 1e6:.2f} → "
                           f"{t['sparse_multiplications'] / 1e6:.2f}")
        rows.append(("total", "", "", pct(t.get("spatial_sparsity")), pct(t.get("winograd_sparsity")),
                     total_mults, ""))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        weighting = t.get("winograd_weighting", "weights")
        lines.append(f"(totals over multiplying convolutions, adder layers left out; winograd total "
                     f"weighted by {weighting}; 'assumed' = "
                     "plain conv measured as if converted)")
        if "linear_sparsity" in t:
            lines.append(f"linear layers: {pct(t['linear_sparsity'])} of their weights are zero")
        return "\n".join(lines)


def _input_shapes(model: nn.Module, input_shape: Sequence[int]) -> dict[nn.Module, tuple[int, ...]]:
    shapes: dict[nn.Module, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple) -> None:
        shapes.setdefault(module, tuple(args[0].shape))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules()
             if isinstance(m, (*conv_layer_types(), nn.Linear))]
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(*input_shape, dtype=dtype, device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return shapes


def _padding_pairs(module: nn.Module) -> list[tuple[int, int]]:
    if is_winograd_layer(module):
        return list(module._padding_pairs)
    if isinstance(module.padding, str):
        totals = [0 if module.padding == "valid" else d * (k - 1)
                  for k, d in zip(module.kernel_size, module.dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    return [(p, p) for p in module.padding]


def _direct_multiplications(module: nn.Module, shape: tuple[int, ...]) -> float:
    dilation = getattr(module, "dilation", (1,) * len(module.kernel_size))
    stride = getattr(module, "stride", (1,) * len(module.kernel_size))
    outputs = shape[0]
    for size, (lo, hi), k, d, s in zip(shape[2:], _padding_pairs(module), module.kernel_size,
                                        dilation, stride):
        outputs *= (size + lo + hi - d * (k - 1) - 1) // s + 1
    taps = math.prod(module.kernel_size)
    return float(module.out_channels * (module.in_channels // module.groups) * taps * outputs)


def _measure(name: str, module: nn.Module, tile: int | Sequence[int] | None, points: Any,
             input_shape: tuple[int, ...] | None) -> LayerSparsity:
    kind = kind_of(module)                  # None: a plain convolution whose kind is unregistered
    own = kind is not None and isinstance(module, kind.winograd_type)   # a layer of its kind
    winograd_domain = kind is not None and kind.weight_domain(module) == "winograd"
    adder = kind is not None and kind.adder
    view = winograd_view(module, tile, points) if (tile is not None or
                                                    is_winograd_layer(module)) else None
    algorithms = module.algorithms if view is None and winograd_domain else \
        None if view is None else view.algorithms
    split = None if view is None else view.decomposition
    # the weight the layer computes with, in its own domain (u·v of a low-rank layer)
    weight = effective(module, "weight") if kind is None else kind.effective_weight(module).detach()
    spatial_sparsity = None if winograd_domain else float((weight == 0).double().mean())
    domain = kind.weight_domain(module) if own else "conv"
    label = q = None
    if algorithms is not None:
        q = weight.double() if winograd_domain else winograd_weight(weight.double(), algorithms, split)
        label = describe(algorithms, split)
        if not own:
            label += " assumed"
    mults = None
    if input_shape is not None and not adder:       # adder layers add (see engine.count)
        direct = _direct_multiplications(module, input_shape)
        if algorithms is not None:
            counts = conv_multiplications(algorithms, module.in_channels, module.out_channels,
                                          module.groups, input_shape, _padding_pairs(module),
                                          decomposition=split)
            dense = float(counts["winograd"])
            sparse = dense * float((q != 0).double().mean())
        else:
            dense = direct
            sparse = direct * (1.0 - (spatial_sparsity or 0.0))
        mults = {"direct": direct, "dense": dense, "sparse": sparse,
                 "direct_sparse": None if spatial_sparsity is None else direct * (1 - spatial_sparsity)}
    return LayerSparsity(
        name=name, kind=type(module).__name__, domain=domain, algorithm=label,
        weights=None if winograd_domain else weight.numel(), spatial_sparsity=spatial_sparsity,
        winograd_weights=None if q is None else q.numel(),
        winograd_sparsity=None if q is None else float((q == 0).double().mean()),
        position_sparsity=None if q is None else (q == 0).double().mean(dim=(0, 1)),
        multiplications=mults,
        method=pruning_info(module, kind.mask_name if kind else "weight").get("method"),
        rank=kind.rank(module) if kind else None,
        piece_sparsity=None if q is None or split is None else
        (q == 0).double().flatten(3).mean(dim=(0, 1, 3)).tolist(),
        exponent=kind.exponent(module) if kind else None)


def _measure_linear(name: str, module: nn.Linear, input_shape: tuple[int, ...] | None) -> LayerSparsity:
    weight = effective(module, "weight")
    sparsity = float((weight == 0).double().mean())
    mults = None
    if input_shape is not None:
        direct = float(weight.numel() * math.prod(input_shape[:-1]))
        mults = {"direct": direct, "dense": direct, "sparse": direct * (1 - sparsity),
                 "direct_sparse": direct * (1 - sparsity)}
    return LayerSparsity(name=name, kind=type(module).__name__, domain="linear", algorithm=None,
                         weights=weight.numel(), spatial_sparsity=sparsity, winograd_weights=None,
                         winograd_sparsity=None, position_sparsity=None, multiplications=mults,
                         method=pruning_info(module).get("method"))


def stats(model: nn.Module, input_shape: Sequence[int] | None = None,
          tile: int | Sequence[int] | None = 4, points: Any = None) -> SparsityReport:
    """Measure the sparsity of every convolution of ``model`` in both domains, and of its ``nn.Linear``.

    Args:
        model: the model (masked or finalized; nothing is changed).
        input_shape: ``(N, C, *S)`` of one input batch; when given, a forward pass on zeros
            records each layer's input and the Winograd total is weighted by multiplications
            (else by Winograd weight counts).
        tile, points: algorithms assumed for plain convolutions (``tile=None``: report them in
            the spatial domain only).

    Returns:
        A :class:`SparsityReport` (print it for a table; ``to_dict()`` for JSON).

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3))
        >>> report = stats(net, input_shape=(1, 3, 16, 16))
        >>> report["0"].winograd_sparsity, tuple(report["0"].position_sparsity.shape)
        (0.0, (6, 6))
    """
    shapes = _input_shapes(model, input_shape) if input_shape is not None else {}
    convs = (*conv_layer_types(), *adder_layer_types())
    rows = [_measure(name, module, tile, points, shapes.get(module)) if isinstance(module, convs)
            else _measure_linear(name, module, shapes.get(module))
            for name, module in model.named_modules() if isinstance(module, (*convs, nn.Linear))]
    layers = [row for row in rows if row.domain != "linear"]
    measured = [row for row in layers if row.exponent is None]     # totals: multiplying layers
    linear = [row for row in rows if row.domain == "linear"]
    totals: dict[str, float] = {}
    if linear:
        totals["linear_sparsity"] = (sum(l.spatial_sparsity * l.weights for l in linear)
                                     / sum(l.weights for l in linear))
    spatial = [l for l in measured if l.spatial_sparsity is not None]
    if spatial:
        weights = sum(l.weights for l in spatial)
        totals["spatial_sparsity"] = sum(l.spatial_sparsity * l.weights for l in spatial) / weights
    wino = [l for l in measured if l.winograd_sparsity is not None]
    if wino and all(l.multiplications for l in wino):
        dense = sum(l.multiplications["dense"] for l in wino)
        totals["winograd_sparsity"] = 1.0 - sum(l.multiplications["sparse"] for l in wino) / dense
        totals["winograd_weighting"] = "multiplications"
    elif wino:
        count = sum(l.winograd_weights for l in wino)
        totals["winograd_sparsity"] = sum(l.winograd_sparsity * l.winograd_weights for l in wino) / count
        totals["winograd_weighting"] = "weights"
    if measured and all(l.multiplications for l in measured):
        totals["direct_multiplications"] = sum(l.multiplications["direct"] for l in measured)
        totals["dense_multiplications"] = sum(l.multiplications["dense"] for l in measured)
        totals["sparse_multiplications"] = sum(l.multiplications["sparse"] for l in measured)
    return SparsityReport(layers, totals, linear)


def panel_grid(count: int, most: int = 6) -> tuple[int, int]:
    """(rows, columns) for ``count`` panels: at most ``most`` a row, rows filled evenly (5 -> 1x5,
    8 -> 2x4, 7 -> 2x4), so no figure is left half empty."""
    rows = -(-count // most)
    return rows, -(-count // rows)


def plot_position_sparsity(report: SparsityReport | nn.Module, path: str,
                           layers: Sequence[str] | None = None, title: str | None = None) -> str:
    """Save a heatmap of per-position Winograd sparsity, one panel per layer, to ``path`` (PNG).

    3-D layers show their n×n×n map as n depth slices side by side (a pruned column of a
    low-rank layer is one fully pruned cell), DWM layers the maps of their pieces side by side.
    Uses matplotlib's Agg backend.

    Args:
        report: a :class:`SparsityReport`, or a model (measured with :func:`stats`).
        path: output file.
        layers: names to plot (default: every layer with a Winograd map).
        title: figure title.

    Returns:
        ``path``.

    Examples:
        >>> plot_position_sparsity(stats(model), "positions.png")          # doctest: +SKIP
        'positions.png'
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:                     # pragma: no cover - depends on the install
        raise ImportError("plot_position_sparsity needs matplotlib: pip install matplotlib") from exc
    if isinstance(report, nn.Module):
        report = stats(report)
    chosen = [l for l in report.layers if l.position_sparsity is not None
              and (layers is None or l.name in layers)]
    if not chosen:
        raise ValueError("no layer with a Winograd-domain map to plot")
    rows, cols = panel_grid(len(chosen))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 1.2, 2.7 * rows + 0.6), squeeze=False,
                             layout="constrained")
    image = None
    for ax, layer in zip(axes.flat, chosen):
        grid = layer.position_sparsity
        volume = grid.dim() == 3
        if volume:                  # the n depth slices side by side, a blank column between
            gap = torch.full((grid.shape[1], 1), float("nan"), dtype=grid.dtype)
            grid = torch.cat([part for piece in grid for part in (piece, gap)][:-1], dim=1)
        image = ax.imshow(grid.numpy(), vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_title(f"{layer.name}: {100 * layer.winograd_sparsity:.0f}%", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if grid.numel() <= 64 and not volume:
            for (i, j), value in zip(torch.cartesian_prod(torch.arange(grid.shape[0]),
                                                          torch.arange(grid.shape[1])).tolist(),
                                     grid.flatten().tolist()):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if value < 0.5 else "black")
    for ax in list(axes.flat)[len(chosen):]:
        ax.axis("off")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.9, label="fraction of zeros")
    fig.suptitle(title or "Winograd-domain sparsity per position")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
