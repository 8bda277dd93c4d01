"""count(model, input_shape): exact multiplication counts of direct, dense and sparse Winograd convolution.

Per convolution layer (Winograd layers, compiled layers and plain ``nn.Conv2d``/``nn.Conv3d``):

* ``direct``: multiplications of direct convolution, ``K * C/g * prod(r) * outputs``;
* ``winograd``: the element-wise stage of dense Winograd, ``K * C/g * prod(n) * tiles``
  (transforms excluded, as in the papers);
* ``sparse``: the same with the actual zero pattern of the Winograd-domain weights, i.e.
  ``nonzero(Q) * tiles`` (each non-zero weight meets one transformed input per tile);
* ``dynamic`` (only with ``inputs``): multiplications whose *both* operands are non-zero,
  measured on the given inputs: ``sum over positions p, channels c and tiles t of
  [V[p, c, t] != 0] * nonzero(Q[:, c, p])``. For Winograd-ReLU layers V = ReLU(Bᵀ d B) is
  sparse, which is how Liu et al. report their 10.4x / 10.8x reductions.

Plain convolutions (stride 2, 1x1, ...) run directly: all columns hold their direct count,
and ``sparse``/``dynamic`` count only non-zero weights (``nonzero(w) * outputs``).
Linear layers are not counted.

**Operations and energy.** Every layer also gets ``additions`` and ``multiplications``: the
operations of the layer *as it runs* (its algorithm and its weight zeros), transforms
included, and an energy estimate from per-operation costs (:data:`ENERGY_MODELS`; default
the common 45 nm fp32 figures, add 0.9 pJ, multiply 3.7 pJ):

* direct convolution: one multiplication and one accumulation per non-zero weight and output
  position (the multiply-accumulate convention of the AdderNet papers);
* Winograd: the same per non-zero Winograd-domain weight and tile, plus the input transform
  per tile and input channel and the output transform per tile and output channel, counted
  from the exact matrices (:func:`~sparsewino.winograd.operations.tile_transform_operations`;
  multiplications by constants other than ±1 count as multiplications);
* adder (:class:`~sparsewino.nn.AdderConv2d`): per weight and output position a subtraction
  and an accumulation, no multiplication (|.| clears a sign bit and is not counted); a zero
  (pruned) weight saves the subtraction, the term |x| is still added;
* Winograd adder (:class:`~sparsewino.nn.WinogradAdderConv2d`): the same per Winograd-domain
  weight and tile, plus both transforms.

Layers with ``p != 1`` add one multiplication per term (exact for p = 2). The
multiplication-count columns (``direct``, ``winograd``, ``sparse``) of an adder layer hold
its multiplications (0 at p = 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ..nn.convert import describe
from ..nn.kinds import kind_of, layer_kind
from ..winograd.algorithm import conv_multiplications
from ..winograd.operations import tile_transform_operations
from ..winograd.tiles import extract_tiles, pad_for_tiles
from ..winograd.transform import input_transform
from . import ops

__all__ = ["count", "LayerCount", "MultiplicationCount", "EnergyModel", "ENERGY_MODELS"]


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation, in picojoules.

    Attributes:
        name: what the figures are for.
        add_pj, mult_pj: one addition / one multiplication.
    """

    name: str
    add_pj: float
    mult_pj: float

    def energy_pj(self, additions: int, multiplications: int) -> float:
        """Energy of ``additions`` additions and ``multiplications`` multiplications (pJ)."""
        return additions * self.add_pj + multiplications * self.mult_pj


#: Per-operation energies at 45 nm commonly quoted in the AdderNet literature (Horowitz,
#: ISSCC 2014): fp32 add 0.9 pJ / multiply 3.7 pJ; fp16 0.4 / 1.1; int32 0.1 / 3.1; int8 0.03 / 0.2.
ENERGY_MODELS: dict[str, EnergyModel] = {
    "fp32-45nm": EnergyModel("fp32, 45 nm", 0.9, 3.7),
    "fp16-45nm": EnergyModel("fp16, 45 nm", 0.4, 1.1),
    "int32-45nm": EnergyModel("int32, 45 nm", 0.1, 3.1),
    "int8-45nm": EnergyModel("int8, 45 nm", 0.03, 0.2),
}


@dataclass
class LayerCount:
    """Multiplication counts of one convolution for one forward pass."""

    name: str
    kind: str                      # "winograd", "winograd-relu", "direct", "adder", "winograd-adder"
    input_shape: tuple[int, ...]
    algorithm: str                 # e.g. "F(4x4,3x3)" or "direct"
    direct: int
    winograd: int
    sparse: int
    weight_density: float          # non-zero fraction of the weights that are multiplied
    dynamic: int | None = None
    activation_density: float | None = None   # non-zero fraction of V (Winograd layers)
    additions: int = 0             # operations as the layer runs (transforms included)
    multiplications: int = 0
    energy_pj: float = 0.0         # from the count's energy model

    @property
    def reduction(self) -> float:
        """direct / sparse."""
        return self.direct / self.sparse if self.sparse else math.inf


@dataclass
class MultiplicationCount:
    """Per-layer counts, totals and reduction factors; ``str()`` prints a table."""

    layers: list[LayerCount] = field(default_factory=list)
    energy_model: EnergyModel = field(default_factory=lambda: ENERGY_MODELS["fp32-45nm"])

    def __iter__(self) -> Iterator[LayerCount]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> LayerCount:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def total(self) -> dict[str, int | None]:
        """Sums over layers (``dynamic`` is None unless measured)."""
        sums: dict[str, int | None] = {key: sum(getattr(l, key) for l in self.layers)
                                       for key in ("direct", "winograd", "sparse")}
        dyn = [l.dynamic for l in self.layers]
        sums["dynamic"] = sum(dyn) if dyn and all(d is not None for d in dyn) else None
        return sums

    @property
    def reduction(self) -> dict[str, float | None]:
        """Total direct multiplications divided by each other total."""
        total = self.total
        direct = total["direct"] or 0

        def ratio(value: int | None) -> float | None:
            return None if value is None else (direct / value if value else math.inf)
        return {"winograd": ratio(total["winograd"]), "sparse": ratio(total["sparse"]),
                "dynamic": ratio(total["dynamic"])}

    @property
    def operations(self) -> dict[str, float]:
        """Total ``additions``, ``multiplications`` and ``energy_pj`` of the layers as they run."""
        return {"additions": sum(l.additions for l in self.layers),
                "multiplications": sum(l.multiplications for l in self.layers),
                "energy_pj": sum(l.energy_pj for l in self.layers)}

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [vars(l).copy() for l in self.layers], "total": self.total,
                "reduction": self.reduction, "operations": self.operations,
                "energy_model": vars(self.energy_model).copy()}

    def operations_table(self) -> str:
        """Additions, multiplications and energy per layer, as run."""
        model = self.energy_model
        head = ["layer", "kind", "additions", "multiplications", "energy (nJ)"]
        rows = [[l.name or "(model)", l.kind, f"{l.additions:,}", f"{l.multiplications:,}",
                 f"{l.energy_pj / 1000:,.1f}"] for l in self.layers]
        ops = self.operations
        rows.append(["total", "", f"{ops['additions']:,}", f"{ops['multiplications']:,}",
                     f"{ops['energy_pj'] / 1000:,.1f}"])
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
        lines += ["  ".join(c.rjust(w) if i >= 2 else c.ljust(w)
                            for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
        lines.append(f"energy per operation ({model.name}): add {model.add_pj:g} pJ, "
                     f"multiply {model.mult_pj:g} pJ")
        lines.append("(every operation as run: the element-wise stage plus the input and output "
                     "transforms' additions and multiplications by constants)")
        return "\n".join(lines)

    def __str__(self) -> str:
        dynamic = self.total["dynamic"] is not None
        head = ["layer", "algorithm", "input", "direct", "winograd", "sparse"]
        head += ["dynamic"] if dynamic else []
        head += ["w density", "reduction"]
        rows = []
        for l in self.layers:
            row = [l.name or "(model)", l.algorithm + (" relu" if l.kind == "winograd-relu" else ""),
                   "x".join(map(str, l.input_shape)), f"{l.direct:,}", f"{l.winograd:,}",
                   f"{l.sparse:,}"]
            if dynamic:
                row.append(f"{l.dynamic:,}")
            last = l.dynamic if dynamic else l.sparse
            adder = l.kind in ("adder", "winograd-adder")
            row += [f"{l.weight_density:.3f}",
                    "-" if adder else (f"{l.direct / last:.2f}x" if last else "inf")]
            rows.append(row)
        total, red = self.total, self.reduction
        row = ["total", "", "", f"{total['direct']:,}", f"{total['winograd']:,}",
               f"{total['sparse']:,}"]
        if dynamic:
            row.append(f"{total['dynamic']:,}")
        last = red["dynamic"] if dynamic else red["sparse"]
        row += ["", f"{last:.2f}x" if last is not None else ""]
        rows.append(row)
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
        lines += ["  ".join(c.rjust(w) if i >= 3 else c.ljust(w)
                            for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
        lines.append(f"reduction vs direct: dense Winograd {red['winograd']:.2f}x, sparse "
                     f"Winograd {red['sparse']:.2f}x"
                     + (f", dynamic {red['dynamic']:.2f}x" if dynamic else ""))
        lines.append("(multiplications of the element-wise stage: transforms excluded, as in "
                     "the papers)")
        return "\n".join(lines) + "\n\n" + self.operations_table()


def _winograd_weights(module: nn.Module) -> tuple[torch.Tensor, tuple, tuple, bool, Any]:
    """(Q (K, C/g, *n) or (K, C/g, S, *n) float64, algorithms, padding pairs, relu,
    decomposition) of a Winograd layer (compiled ones answer through their kind)."""
    kind = ops.compiled_kind(module)
    if kind is not None:
        return kind.winograd_weights(module)
    q = module.winograd_weight().detach()
    return (q.double(), module.algorithms, module._padding_pairs, module.winograd_relu,
            module.decomposition)


def _winograd_layer(name: str, module: nn.Module, x: torch.Tensor, dynamic: bool) -> LayerCount:
    q, algs, padding, relu, split = _winograd_weights(module)
    k, cg = q.shape[:2]
    groups = x.shape[1] // cg
    mults = conv_multiplications(algs, x.shape[1], k, groups, x.shape, padding, decomposition=split)
    tiles = mults["tiles"]
    nonzero = q != 0
    nnz = int(nonzero.sum())
    in_adds, in_mults = tile_transform_operations(algs, "BT")
    out_adds, out_mults = tile_transform_operations(algs, "AT")
    # a decomposed layer transforms each piece's sub-image (C x S inputs), one output transform
    stacked = x.shape[1] * (split.pieces if split is not None else 1)
    transforms = (tiles * (stacked * in_adds + k * out_adds),
                  tiles * (stacked * in_mults + k * out_mults))
    count = LayerCount(
        name=name, kind="winograd-relu" if relu else "winograd",
        input_shape=tuple(x.shape), algorithm=describe(algs, split), direct=mults["direct"],
        winograd=mults["winograd"], sparse=nnz * tiles, weight_density=nnz / nonzero.numel(),
        additions=nnz * tiles + transforms[0], multiplications=nnz * tiles + transforms[1])
    if dynamic:
        if split is not None:             # pieces are input channels of the stacked sub-images
            x, padding = split.stack(x, [a.m for a in algs]), ((0, 0),) * len(algs)
            nonzero = nonzero.reshape(k, cg * split.pieces, *nonzero.shape[3:])
            cg *= split.pieces
        kernel, tile, ns = [a.r for a in algs], [a.m for a in algs], [a.n for a in algs]
        # Non-zero weights per (input channel within its group, group, position).
        per_column = nonzero.reshape(groups, k // groups, cg, -1).sum(dim=1)   # (g, C/g, P)
        used = active = 0
        for sample in x.split(8):            # bounded memory: a few images at a time
            padded = pad_for_tiles(sample.double(), kernel, tile, padding)
            v = input_transform(extract_tiles(padded, tile, ns), algs)        # (N, C, *T, *n)
            if relu:
                v = torch.relu(v)
            v_nonzero = (v != 0).reshape(v.shape[0], groups, cg, -1, per_column.shape[-1])
            counts = v_nonzero.sum(dim=(0, 3))                            # (g, C/g, P)
            used += int((counts * per_column).sum())
            active += int(counts.sum())
        count.dynamic = used
        count.activation_density = active / (tiles * x.shape[1] * math.prod(ns))
    return count


def _direct_layer(name: str, module: nn.Module, x: torch.Tensor, output: torch.Tensor,
                  dynamic: bool) -> LayerCount:
    weight = module.weight.detach()
    outputs = output.shape[0] * math.prod(output.shape[2:])
    nnz = int((weight != 0).sum())
    direct = weight.numel() * outputs
    sparse = nnz * outputs
    return LayerCount(name, "direct", tuple(x.shape), "direct", direct, direct, sparse,
                      nnz / weight.numel(), sparse if dynamic else None,
                      additions=sparse, multiplications=sparse)


#: Dimensions of a batched input of each torch convolution type.
_BATCHED = {nn.Conv1d: 3, nn.Conv2d: 4, nn.Conv3d: 5}


def _how_to_count(module: nn.Module) -> tuple[str, int] | None:
    """(``"winograd"``, ``"adder"`` or ``"direct"``, dimensions of a batched input) for a layer
    ``count`` counts, from the engine's compiled kinds and the layer kinds; ``None`` for others."""
    compiled = ops.compiled_kind(module)
    if compiled is not None:
        return (compiled.counts, compiled.dims + 2) if compiled.counts else None
    kind = layer_kind(module)
    if kind is not None:
        return ("adder" if kind.adder else "winograd"), _BATCHED[kind.conv_type]
    torch_type = next((t for t in _BATCHED if isinstance(module, t)), None)
    return ("direct", _BATCHED[torch_type]) if torch_type is not None else None


def _adder_layer(name: str, module: nn.Module, x: torch.Tensor) -> LayerCount:
    counted = module.operations(tuple(x.shape))
    kind = kind_of(module)                         # None for a compiled adder layer (spatial)
    winograd = kind is not None and kind.weight_domain(module) == "winograd"
    algorithm = f"{describe(module.algorithms)} {module.transforms}" if winograd else "adder"
    mults = counted["multiplications"]
    return LayerCount(name, "winograd-adder" if winograd else "adder", tuple(x.shape),
                      algorithm, mults, mults, mults,
                      counted["nonzero"] / module.weight.numel(), additions=counted["additions"],
                      multiplications=mults)


def count(model: nn.Module, input_shape: Sequence[int],
          inputs: torch.Tensor | None = None,
          energy: EnergyModel | str = "fp32-45nm") -> MultiplicationCount:
    """Exact multiplication counts of every convolution of ``model`` for one forward pass.

    Args:
        model: a model with Winograd layers (``WinogradConv2d``/``3d``, low-rank ones
            included), compiled layers (:class:`SparseWinogradConv2d`/``3d``) and/or plain
            convolutions.
        input_shape: the model input shape ``(N, C, *spatial)``; a zero input of this shape
            is run once (in eval mode, without gradients) to find each layer's input shape.
        inputs: optional real inputs; when given, they are run instead and the ``dynamic``
            count (both operands non-zero) is measured on them.
        energy: per-operation energies, an :class:`EnergyModel` or a name of
            :data:`ENERGY_MODELS` (default ``"fp32-45nm"``: add 0.9 pJ, multiply 3.7 pJ).

    Returns:
        A :class:`MultiplicationCount` (``str()`` gives the table; ``.total`` and
        ``.reduction`` the sums and the factors direct / other).

    Examples:
        >>> from sparsewino.nn import WinogradConv2d
        >>> net = nn.Sequential(WinogradConv2d(3, 8, 3, padding=1, tile=4))
        >>> counts = count(net, (1, 3, 8, 8))
        >>> counts.total["direct"], counts.total["winograd"], round(counts.reduction["winograd"], 2)
        (13824, 3456, 4.0)
        >>> counts.operations["multiplications"]   # element-wise 3456 + the transforms' constants
        10032
    """
    if isinstance(energy, str):
        if energy not in ENERGY_MODELS:
            raise ValueError(f"energy must be an EnergyModel or one of {sorted(ENERGY_MODELS)}, "
                             f"got {energy!r}")
        energy = ENERGY_MODELS[energy]
    if inputs is not None:
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a tensor, got {type(inputs).__name__}")
        if tuple(inputs.shape[1:]) != tuple(input_shape[1:]):
            raise ValueError(f"inputs of shape {tuple(inputs.shape)} do not match input_shape "
                             f"{tuple(input_shape)} (batch may differ)")
        x = inputs
    else:
        if len(input_shape) < 3:
            raise ValueError(f"input_shape must be (N, C, *spatial), got {tuple(input_shape)}")
        param = next(model.parameters(), None)
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        device = param.device if param is not None else torch.device("cpu")
        x = torch.zeros(tuple(input_shape), dtype=dtype, device=device)
    layers: list[LayerCount] = []
    handles = []

    def hook(name: str, how: str, batched: int):
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            inp = args[0].detach()
            if inp.dim() == batched - 1:
                inp, output = inp.unsqueeze(0), output.unsqueeze(0)       # unbatched call
            if how == "adder":
                layers.append(_adder_layer(name, module, inp))
            elif how == "direct":
                layers.append(_direct_layer(name, module, inp, output, inputs is not None))
            else:
                layers.append(_winograd_layer(name, module, inp, inputs is not None))
        return record

    for name, module in model.named_modules():
        counted = _how_to_count(module)
        if counted is not None:
            handles.append(module.register_forward_hook(hook(name, *counted)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if not layers:
        raise ValueError("model has no convolution layers to count")
    for layer in layers:
        layer.energy_pj = energy.energy_pj(layer.additions, layer.multiplications)
    return MultiplicationCount(layers, energy)
