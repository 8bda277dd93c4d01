"""compile(model): an inference copy that runs as whole-model kernel programs.

1. **Trace** a copy of the model with ``torch.fx`` (Winograd layers, compiled layers and
   modules with user hooks are leaves, so hooks keep running).
2. **Fuse** in the graph: after each Winograd layer, ``nn.Linear`` or 1x1 ``nn.Conv2d``, an
   eval-mode BatchNorm (folded into the weights), a residual addition (``a + b``, the other
   operand becomes a second input), a ReLU and, for Winograd layers with an even tile, a
   2x2/stride-2 max-pool. Fused modules become ``nn.Identity``.
3. **Compile** those layers to :class:`~sparsewino.engine.SparseWinogradConv2d`,
   :class:`~sparsewino.engine.SparseLinear`, :class:`~sparsewino.engine.SparsePointwiseConv2d`
   (packed sparse/dense weights).
4. **Run** as a :class:`CompiledModel`: per input shape a
   :class:`~sparsewino.engine.program.Program` lowers the graph to kernel calls (pooling,
   additions, BatchNorm, ReLU and flatten included) over one arena, so that a model is one C
   call per run of supported layers; other nodes run in PyTorch between them.

A model that ``torch.fx`` cannot trace is compiled child by child (each traceable child
becomes a :class:`CompiledModel`, the rest keeps its own forward).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import fx, nn
from torch.nn.utils import prune as torch_prune

from ..errors import PrecisionRangeError
from ..nn.kinds import adder_layer_types, is_adder_layer, kind_of, winograd_layer_types
from . import kernels, ops
from .modules import CompiledLayer, check_threads
from .ops.base import BuildOptions, CompiledKind, pair
from .ops.eltwise import ADD_FUNCTIONS, RELU_FUNCTIONS
from .program import Program, build_program, node_op
from .tuning import TuningCache, default_cache_path, record_input_shapes, retiled, tune_layer

__all__ = ["compile", "CompileReport", "LayerKernel", "compile_report", "CompiledModel"]

logger = logging.getLogger(__name__)



def _compiled_reports() -> set[str]:
    """The report names of the compiled kinds (``"sparse-winograd"``, ``"sparse-gemm"``...)."""
    return {kind.report for kind in ops.COMPILED_KINDS.values()}


@dataclass(frozen=True)
class LayerKernel:
    """What compile() did with one layer (or one graph node)."""

    name: str
    kernel: str            # a compiled kind's report ("sparse-winograd", "sparse-gemm"),
                           # "engine" (pool, add, ...), "layer-forward" (Winograd layer kept)
                           # or "pytorch"
    detail: str            # algorithm, formats and density, or why it runs in PyTorch
    fused: tuple[str, ...] = ()

    @property
    def compiled(self) -> bool:
        return self.kernel in _compiled_reports()


class CompileReport(list):
    """List of :class:`LayerKernel`; ``str()`` gives a table."""

    backend: str = "?"
    precision: str = "fp32"          # of the products (compile's ``precision``)

    @property
    def compiled(self) -> list[str]:
        """Names of the layers compiled to packed weights (Winograd and GEMM layers)."""
        return [d.name for d in self if d.compiled]

    @property
    def winograd(self) -> list[LayerKernel]:
        """Entries of Winograd layers (compiled or kept)."""
        return [d for d in self if d.kernel in ("sparse-winograd", "layer-forward")]

    @property
    def fallbacks(self) -> dict[str, str]:
        """Layers and nodes that run in PyTorch, with the reason."""
        return {d.name: d.detail for d in self if d.kernel in ("layer-forward", "pytorch")}

    def __str__(self) -> str:
        if not self:
            return "no layers found"
        width = max(5, max(len(d.name) for d in self))
        lines = [f"{'layer':<{width}}  {'kernel':<15}  details"]
        for d in self:
            fused = f" (+ fused {', '.join(d.fused)})" if d.fused else ""
            lines.append(f"{d.name:<{width}}  {d.kernel:<15}  {d.detail}{fused}")
        winograd = self.winograd
        done = sum(d.compiled for d in winograd)
        others = [d for d in self if d.kernel == "sparse-gemm"]
        lines.append(f"{done} of {len(winograd)} Winograd layers compiled, {len(others)} "
                     f"GEMM layers; {len(self.fallbacks)} in PyTorch; backend: {self.backend}"
                     + (f"; precision {self.precision}" if self.precision != "fp32" else ""))
        return "\n".join(lines)


def compile_report(model: nn.Module) -> CompileReport:
    """The report attached to a model returned by :func:`compile`."""
    report = getattr(model, "compile_report", None)
    if not isinstance(report, CompileReport):
        raise ValueError("model was not produced by sparsewino.engine.compile()")
    return report


# ---------------------------------------------------------------------- hooks and copies
def _weight_hooks(module: nn.Module) -> list[Any]:
    """Pre-hooks that only recompute a weight (prune masks, weight_norm)."""
    from torch.nn.utils.weight_norm import WeightNorm
    return [h for h in module._forward_pre_hooks.values()
            if isinstance(h, (torch_prune.BasePruningMethod, WeightNorm))]


def user_hooks(module: nn.Module) -> list[str]:
    """Forward hooks and pre-hooks other than weight recomputation, described."""
    weight = {id(h) for h in _weight_hooks(module)}
    found = [getattr(h, "__name__", type(h).__name__) for h in module._forward_pre_hooks.values()
             if id(h) not in weight]
    found += [getattr(h, "__name__", type(h).__name__) for h in module._forward_hooks.values()]
    return found


def _refresh_weights(layer: nn.Module) -> None:
    """Recompute ``weight`` from prune masks / weight_norm so that packing reads its value."""
    for hook in _weight_hooks(layer):
        hook(layer, None)


def _copy_model(model: nn.Module) -> nn.Module:
    """deepcopy that also copes with non-leaf tensor attributes (e.g. the ``weight`` that
    torch.nn.utils.prune computes with autograd history), without touching ``model``."""
    memo: dict[int, object] = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and (not value.is_leaf or value.is_inference()):
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)


# ---------------------------------------------------------------------- layer compilation
def _batchnorm_affine(bn: nn.Module, channels: int, kind: type) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift) of an eval-mode BatchNorm of type ``kind`` that can be folded, else None."""
    if type(bn) is not kind or bn.num_features != channels or bn.running_mean is None or \
            bn.training or bn.running_mean.device.type != "cpu":
        return None
    inv = torch.rsqrt(bn.running_var.double() + bn.eps)
    weight = bn.weight.double() if bn.weight is not None else torch.ones_like(inv)
    bias = bn.bias.double() if bn.bias is not None else torch.zeros_like(inv)
    scale = weight * inv
    return scale.float(), (bias - bn.running_mean.double() * scale).float()


def _is_fusable_pool(module: nn.Module) -> bool:
    """A plain 2x2 / stride-2 max-pool (floor mode), which a kind that can pool absorbs."""
    if type(module) is not nn.MaxPool2d:
        return False
    stride = module.stride if module.stride is not None else module.kernel_size
    return (pair(module.kernel_size) == (2, 2) and pair(stride) == (2, 2) and
            pair(module.padding) == (0, 0) and pair(module.dilation) == (1, 1) and
            not module.ceil_mode and not module.return_indices)


def _layer_kind(module: nn.Module) -> tuple[CompiledKind | None, str]:
    """The compiled kind of :mod:`sparsewino.engine.ops` that takes ``module``, or ``None`` and
    why not (empty for modules of no interest)."""
    if user_hooks(module):
        return None, f"has forward hooks {user_hooks(module)}: runs in PyTorch with them"
    kind = ops.source_kind(module)
    if kind is not None:
        reason = kind.reason(module)
        return (kind, "") if reason is None else (None, reason)
    if is_adder_layer(module):
        return None, (f"{type(module).__name__}: the engine has no kernel for its Winograd "
                      "transforms; runs its own forward (the adder product kernel, p = "
                      f"{kind_of(module).exponent(module):g}), nothing fused into it")
    if isinstance(module, winograd_layer_types()):
        return None, (f"{type(module).__name__}: only 2-D and 3-D layers are compiled; it runs "
                      "its own (PyTorch) Winograd forward")
    return None, ""


#: What ``compile(precision=...)`` accepts: the precision of the products.
PRODUCT_PRECISIONS = ("fp32", "bf16")


def _reduced(layer: nn.Module) -> str | None:
    """The compiled layer's reduced precision: ``"fp16"`` (weights), ``"bf16"`` (products) or
    ``None`` (fp32, and kinds without packed weights)."""
    precision = getattr(getattr(layer, "packed", None), "precision", None)
    return precision if precision in REDUCED_WARN_ERROR else None


_REDUCED_NOTE = {"fp16": "fp16 weights", "bf16": "bf16 weights and products"}


def _describe(kind: CompiledKind, layer: nn.Module, note: str = "") -> str:
    """The report's line for a compiled layer: the kind's description, its reduced precision,
    the build note."""
    reduced = _reduced(layer)
    return kind.describe(layer) + (f"; {_REDUCED_NOTE[reduced]}" if reduced else "") + \
        (f"; {note}" if note else "")


@dataclass
class _Options:
    """What compile() was asked for, passed down the recursion."""

    threads: int | None
    fuse: bool
    formats: Any
    precision: str
    report: "CompileReport"
    shapes: dict[int, tuple[int, ...]] | None = None     # layer input shapes when tuning
    cache: TuningCache | None = None


def _build_layer(module: nn.Module, kind: CompiledKind, options: _Options,
                 fusion: "_Fusion | None" = None) -> tuple[CompiledLayer, str]:
    """The compiled layer, tuned when compile() got an example input; and a note for the report."""
    build = BuildOptions(options.threads, options.formats, options.precision)
    if fusion is not None:
        scale, shift = fusion.affine if fusion.affine is not None else (None, None)
        build = dataclasses.replace(build, relu=fusion.relu, scale=scale, shift=shift,
                                    pool=fusion.pool, residual=fusion.residual is not None)
    note = ""
    if kind.tunable and options.shapes is not None and id(module) in options.shapes \
            and options.formats == "auto":
        _refresh_weights(module)
        threads = options.threads or torch.get_num_threads()
        plain = BuildOptions(options.threads, precision=options.precision)
        choice = tune_layer(module, options.shapes[id(module)], threads,
                            lambda layer, rule: _build(layer, kind,
                                                       dataclasses.replace(plain, formats=rule)),
                            options.cache)
        if choice.tile != module.tile[0]:
            module = retiled(module, choice.tile)
        build, note = dataclasses.replace(build, formats=choice.formats), choice.describe()
    layer = _build(module, kind, build)
    reduced = _reduced(layer)
    if reduced and kind.counts == "winograd":
        probe = _Probe(module, kind, build)
        error = probe.error(layer)
        if reduced == "bf16" and error > BF16_MAX_ERROR:
            layer, reduced, error, why = _bf16_fallback(module, kind, build, probe, error)
            note = "; ".join(filter(None, [note, why]))
        if reduced:
            note = "; ".join(filter(None, [note, f"{reduced} rounding {error:.1e} of the output"]))
        if reduced and error > REDUCED_WARN_ERROR[reduced]:
            logger.warning("engine.compile: %s change the output of a %s with tile %s by %.2g "
                           "of its largest value (above %g: the transform of a large tile "
                           "amplifies the rounding); compile it in fp32 or with a smaller tile "
                           "where that matters", _REDUCED_NOTE[reduced], type(module).__name__,
                           layer.spec.tile, error, REDUCED_WARN_ERROR[reduced])
    return layer, note


#: Output error (relative to the largest output) above which a reduced precision draws a
#: warning, per precision: fp16 weights 3e-3; bf16 (compile keeps it only below
#: BF16_MAX_ERROR, so this marks a layer built alone with bf16) 3e-2.
REDUCED_WARN_ERROR = {"fp16": 3e-3, "bf16": 3e-2}
FP16_WARN_ERROR = REDUCED_WARN_ERROR["fp16"]
#: Largest output error of a Winograd layer in bf16 (weights and, at dense positions, input
#: tiles rounded to bf16, relative 2^-9 each, amplified by the output transform) that
#: ``compile(precision="bf16")`` accepts: about OpenVINO's bf16 on the same layers. On a random
#: 64-channel 3x3 layer (python benchmarks/bf16_error.py): OpenVINO's bf16 3.6e-3, direct
#: convolution in bf16 2.6e-3; ours in bf16 with F(2,3) 3.8e-3, F(4,3) 2.1e-2, F(6,3) 9.6e-2;
#: with fp16 weights (also 2 bytes, 3 more bits) and fp32 tiles 3.4e-4, 1.8e-3, 1.2e-2.
BF16_MAX_ERROR = 5e-3


def _bf16_fallback(module: nn.Module, kind: CompiledKind, build: BuildOptions, probe: "_Probe",
                   bf16_error: float) -> tuple[CompiledLayer, str | None, float, str]:
    """A Winograd layer whose bf16 output error is above BF16_MAX_ERROR: fp16 weights with fp32
    tiles (two bytes a weight too) when they stay below it, else the probe's fp32 layer.
    Returns the layer, its reduced precision (or None), its error and the report's note."""
    why = f"bf16 would round the output by {bf16_error:.1e}"
    fp16 = _build(module, kind, dataclasses.replace(build, precision="fp16"))
    if _reduced(fp16) == "fp16":                 # else fp16 was out of range: fp32 it is
        error = probe.error(fp16)
        if error <= BF16_MAX_ERROR:
            return fp16, "fp16", error, why
        why += f", fp16 weights by {error:.1e}"
    return probe.reference, None, 0.0, why + ": kept fp32"


class _Probe:
    """The fp32 build of a layer and its output on a random probe input, computed once: what
    reduced-precision builds of the same layer are measured against (in PyTorch)."""

    def __init__(self, module: nn.Module, kind: CompiledKind, build: BuildOptions) -> None:
        self.reference = _build(module, kind, dataclasses.replace(build, precision="fp32"))
        spec = self.reference.spec
        kernel = spec.kernel_size if isinstance(spec.kernel_size, int) else max(spec.kernel_size)
        sizes = (max(8, 2 * (spec.tile + kernel)),) * kind.dims
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(1, self.reference.in_channels, *sizes, generator=generator)
        self.residual = None
        if spec.residual:
            self.residual = torch.zeros(1, self.reference.out_channels,
                                        *self.reference.output_size(*sizes))
        with torch.no_grad():
            self.y32 = self.reference._torch_forward(self.x, self.residual)

    def error(self, layer: nn.Module) -> float:
        """Max |layer's output - the fp32 output| over the largest fp32 output."""
        with torch.no_grad():
            reduced = layer._torch_forward(self.x, self.residual)
        scale = float(self.y32.abs().max())
        return float((reduced - self.y32).abs().max()) / scale if scale > 0 else 0.0


def _build(module: nn.Module, kind: CompiledKind, options: BuildOptions) -> CompiledLayer:
    _refresh_weights(module)
    try:
        return kind.build(module, options)
    except PrecisionRangeError as exc:
        if options.precision == "fp32":
            raise
        logger.warning("engine.compile: %s; this layer stays fp32", exc)
        return kind.build(module, dataclasses.replace(options, precision="fp32"))


# ---------------------------------------------------------------------- tracing and fusion
class _Tracer(fx.Tracer):
    """Leaves: torch.nn modules, Winograd and compiled layers, modules with user hooks."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (*winograd_layer_types(), CompiledLayer, CompiledModel,
                          *adder_layer_types())) \
                or user_hooks(m):
            return True
        return super().is_leaf_module(m, qualname)


def _single_user(node: fx.Node) -> fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return type(modules.get(node.target)) is nn.ReLU
    if node.op == "call_function":
        return node.target in RELU_FUNCTIONS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _only_input(node: fx.Node, source: fx.Node) -> bool:
    """``node`` reads ``source`` as its first argument and nothing else that is a tensor."""
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) or n)
    return found == [source] and node.args[:1] == (source,)


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_name, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, name, module)


@dataclass
class _Fusion:
    node: fx.Node
    kind: CompiledKind
    affine: tuple | None = None
    residual: fx.Node | None = None
    relu: bool = False
    pool: int = 0
    absorbed: tuple[fx.Node, ...] = ()


def _plan_fusion(node: fx.Node, kind: CompiledKind, module: nn.Module,
                 modules: dict[str, nn.Module]) -> _Fusion:
    fusion = _Fusion(node, kind)
    absorbed: list[fx.Node] = []
    current = node
    channels = kind.out_channels(module)
    nxt = _single_user(current)
    bn_type = kind.batchnorm_type(module)
    if nxt is not None and nxt.op == "call_module" and _only_input(nxt, current):
        affine = _batchnorm_affine(modules[nxt.target], channels, bn_type)
        if affine is not None:
            fusion.affine, current = affine, nxt
            absorbed.append(nxt)
    nxt = _single_user(current)
    if nxt is not None and nxt.op == "call_function" and nxt.target in ADD_FUNCTIONS and \
            len(nxt.args) == 2 and not nxt.kwargs and \
            all(isinstance(a, fx.Node) for a in nxt.args) and nxt.args[0] is not nxt.args[1]:
        other = nxt.args[1] if nxt.args[0] is current else nxt.args[0]
        fusion.residual, current = other, nxt
        absorbed.append(nxt)
    nxt = _single_user(current)
    if nxt is not None and _is_relu(nxt, modules) and nxt.args[:1] == (current,):
        fusion.relu, current = True, nxt
        absorbed.append(nxt)
    nxt = _single_user(current)
    if kind.can_pool(module) and fusion.residual is None and nxt is not None and \
            nxt.op == "call_module" and _only_input(nxt, current) and \
            _is_fusable_pool(modules[nxt.target]):
        fusion.pool, current = 2, nxt
        absorbed.append(nxt)
    fusion.absorbed = tuple(absorbed)
    return fusion


def _apply_fusion(graph: fx.Graph, fusion: _Fusion) -> None:
    node = fusion.node
    if not fusion.absorbed:
        return
    last = fusion.absorbed[-1]
    if fusion.residual is not None:
        add = next(n for n in fusion.absorbed if n.op == "call_function")
        add.prepend(node)                       # after the residual operand, before the add
        node.args = (node.args[0], fusion.residual)
    last.replace_all_uses_with(node)
    for absorbed in reversed(fusion.absorbed):
        graph.erase_node(absorbed)


def _report_node(node: fx.Node, modules: dict[str, nn.Module]) -> LayerKernel | None:
    kind = node_op(node, modules)
    if node.op in ("placeholder", "output") or kind in ("alias", "size"):
        return None
    label = node.target if node.op == "call_module" else node.name
    if kind is not None:
        what = type(modules[node.target]).__name__ if node.op == "call_module" else kind
        return LayerKernel(str(label), "engine", what)
    target = node.target if node.op != "call_function" else getattr(node.target, "__name__",
                                                                    str(node.target))
    return LayerKernel(str(label), "pytorch", f"{node.op} {target}: no engine kernel")


def _compile_traced(tree: nn.Module, options: _Options, prefix: str) -> "CompiledModel":
    graph = _Tracer().trace(tree)
    modules = dict(tree.named_modules())
    aliases: dict[int, list[str]] = {}           # a module reachable under several names
    for path, module in tree.named_modules(remove_duplicate=False):
        aliases.setdefault(id(module), []).append(path)
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    entries: dict[str, LayerKernel] = {}
    for node in list(graph.nodes):
        if node.op != "call_module" or node.target not in modules:
            continue
        module = modules[node.target]
        kind, reason = _layer_kind(module)
        name = prefix + node.target
        if kind is None:
            if reason and isinstance(module, winograd_layer_types()):
                entries[name] = LayerKernel(name, "layer-forward", reason)
            elif reason:
                entries[name] = LayerKernel(name, "pytorch", reason)
            continue
        if calls[node.target] > 1 or not options.fuse:
            fusion = _Fusion(node, kind)            # shared module: nothing fused
        else:
            fusion = _plan_fusion(node, kind, module, modules)
        fused_names = tuple(prefix + (str(n.target) if n.op == "call_module" else n.name)
                            for n in fusion.absorbed)
        for absorbed in fusion.absorbed:
            if absorbed.op == "call_module" and calls.get(absorbed.target) == 1:
                _set_module(tree, absorbed.target, nn.Identity())
        _apply_fusion(graph, fusion)
        if name in entries and entries[name].kernel in _compiled_reports():
            continue                                 # a shared module, compiled once
        compiled, note = _build_layer(module, kind, options, fusion)
        for path in aliases[id(module)]:
            _set_module(tree, path, compiled)
        entries[name] = LayerKernel(name, kind.report, _describe(kind, compiled, note),
                                    fused_names)
    graph.lint()
    gm = fx.GraphModule(tree, graph)
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        name = prefix + str(node.target) if node.op == "call_module" else prefix + node.name
        if name in entries or node.op not in ("call_module", "call_function", "call_method"):
            continue
        entry = _report_node(node, modules)
        if entry is not None:
            entries[name] = LayerKernel(prefix + entry.name, entry.kernel, entry.detail)
    options.report.extend(entries.values())
    return CompiledModel(tree, gm, options.threads, options.report)


def _compile_module(module: nn.Module, name: str, options: _Options) -> nn.Module:
    """Compile ``module`` (already a private copy): as a graph, as a layer, or child by child."""
    report = options.report
    kind, reason = _layer_kind(module)
    if kind is not None:
        compiled, note = _build_layer(module, kind, options)
        report.append(LayerKernel(name, kind.report, _describe(kind, compiled, note)))
        return compiled
    if isinstance(module, winograd_layer_types()):
        report.append(LayerKernel(name, "layer-forward", reason))
        return module
    if not module._modules:
        if reason:
            report.append(LayerKernel(name, "pytorch", reason))
        return module
    if reason:                                   # a container with hooks: keep it, and them
        report.append(LayerKernel(name or "(model)", "pytorch", reason))
    else:
        try:
            return _compile_traced(module, options, name + "." if name else "")
        except Exception:  # noqa: BLE001 - any tracing failure: compile child by child
            pass
    for child_name, child in list(module._modules.items()):
        if child is not None:
            full = f"{name}.{child_name}" if name else child_name
            module._modules[child_name] = _compile_module(child, full, options)
    return module


# ---------------------------------------------------------------------- the compiled model
class CompiledModel(nn.Module):
    """A traced model running as kernel programs (see the module docstring).

    It holds the same top-level children as the model it was compiled from (compiled layers
    in place of the originals, fused modules as ``nn.Identity``), so names, ``state_dict``
    keys, ``get_submodule`` and indexing of an ``nn.Sequential`` work as on the original.
    The program for an input shape is built on first use and cached; the ``torch`` backend
    and inputs the program cannot take run the rewritten graph in PyTorch instead.
    """

    def __init__(self, tree: nn.Module, gm: fx.GraphModule, threads: int | None,
                 report: CompileReport) -> None:
        super().__init__()
        for name, child in tree.named_children():
            self.add_module(name, child)
        for name, value in tree._parameters.items():
            self.register_parameter(name, value)
        for name, value in tree._buffers.items():
            self.register_buffer(name, value)
        object.__setattr__(self, "_tree", tree)
        object.__setattr__(self, "_graph_module", gm)
        self.threads = threads
        self.compile_report = report
        self._setup()
        self.eval()

    def _setup(self) -> None:
        self._lock = threading.RLock()
        self._programs: dict[tuple, Program | None] = {}
        self._layers = [m for m in self._graph_module.modules() if isinstance(m, CompiledLayer)]
        self._submodules = list(self._graph_module.modules())
        for layer in self._layers:
            layer.share_lock(self._lock)

    @property
    def graph_module(self) -> fx.GraphModule:
        """The rewritten graph (what runs on the ``torch`` backend)."""
        return self._graph_module

    def program(self, x: torch.Tensor) -> Program | None:
        """The program for inputs shaped like ``x`` on the current backend (``None``: the
        graph runs in PyTorch)."""
        name = kernels.backend()
        if name == "torch":
            return None
        threads = self.threads or torch.get_num_threads()
        key = (tuple(x.shape), threads, name, tuple(m.generation for m in self._layers))
        with self._lock:
            if key not in self._programs:
                if len(self._programs) > 16:
                    self._programs.clear()
                self._programs[key] = build_program(self._graph_module, x.contiguous(), threads,
                                                    name)
            return self._programs[key]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.training:
            raise RuntimeError("a compiled model is inference-only: call .eval() (compile "
                               "returns it in eval mode); train the uncompiled model instead")
        if len(args) != 1 or kwargs or type(args[0]) is not torch.Tensor or \
                args[0].dtype != torch.float32 or not args[0].is_cpu or \
                (args[0].requires_grad and torch.is_grad_enabled()) or args[0].numel() == 0:
            return self._graph_module(*args, **kwargs)
        x = args[0]
        if any((m._forward_hooks or m._forward_pre_hooks) and user_hooks(m)
               for m in self._submodules):
            return self._graph_module(x)           # hooks added after compile (e.g. count())
        with self._lock:      # one hold: a reload between planning and running frees the
            program = self.program(x)           # weights the planned operations point to
            if program is None:
                return self._graph_module(x)
            return program.run(x.contiguous())

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Load every compiled layer's packed weights under the model's lock: a forward pass
        running in another thread sees the whole old state or the whole new one, never a mix."""
        with self._lock:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # Sequential-style access and attributes of the original model.
    def __getitem__(self, index: Any) -> Any:
        if isinstance(self._tree, (nn.Sequential, nn.ModuleList)):
            return self._tree[index]
        raise TypeError(f"the compiled {type(self._tree).__name__} is not indexable")

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._modules.values())

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            tree = self.__dict__.get("_tree")
            if tree is None or name.startswith("__"):
                raise
            return getattr(tree, name)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for transient in ("_lock", "_programs", "_layers", "_submodules"):
            state.pop(transient, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._setup()

    def extra_repr(self) -> str:
        return f"compiled {type(self._tree).__name__}, backend {kernels.backend()}"


def compile(model: nn.Module, threads: int | None = None, *, fuse: bool = True,
            formats: str | Sequence[str] = "auto", weights: str = "fp32",
            precision: str = "fp32", tune: torch.Tensor | None = None,
            tuning_cache: str | Path | None = "default") -> nn.Module:
    """An inference copy of ``model`` whose layers run the sparse CPU kernels.

    Every :class:`~sparsewino.nn.WinogradConv2d` (spatial or Winograd domain, with or without
    prune masks, Winograd-ReLU and low-rank layers included) becomes a
    :class:`~sparsewino.engine.SparseWinogradConv2d` (decomposed by DWM for a kernel above 3
    taps or a stride above 1, a :class:`~sparsewino.engine.SparseDecomposedConv2d`; a
    ``WinogradConv3d`` a :class:`~sparsewino.engine.SparseWinogradConv3d`) holding its
    pre-transformed Winograd weights, packed per position as sparse or dense panels by
    :func:`~sparsewino.engine.choose_format`; ``nn.Linear`` layers (pruned ones stored
    sparse) and 1x1 ``nn.Conv2d`` layers become GEMM layers. The model is traced with
    ``torch.fx`` and runs as a program of kernel calls (module docstring); pooling,
    BatchNorm, additions, ReLU and flatten run in the engine too.

    Kept as they are (listed in the report, computed exactly as before): other Winograd layer
    kinds (1-D), float64 or GPU layers, non-square/non-cubic tiles, kernels or pieces and input
    tiles n > 8, subclasses that override ``forward``, plain ``nn.Conv2d`` other than 1x1
    (convert the model first: ``sparsewino.nn.convert``), modules the engine has no kernel for,
    and modules with forward hooks or pre-hooks (they run in PyTorch, hooks included; prune
    masks and ``weight_norm`` are applied when packing instead).

    With ``fuse=True`` the modules that directly follow a compiled layer are fused into it,
    in this order when present: an eval-mode BatchNorm (BatchNorm3d after 3-D layers; folded
    into weights and bias), a residual addition, a ReLU and (undecomposed 2-D Winograd layers
    with an even tile, no residual) a 2x2 / stride-2 max-pool (floor mode). Fused modules
    become ``nn.Identity``.

    The copy is in eval mode with ``requires_grad=False`` parameters; compiled layers are
    inference-only. The original model is not modified, and later changes to it do not
    affect the copy.

    Args:
        model: a model (or one layer).
        threads: OpenMP threads per kernel call; ``None`` follows ``torch.get_num_threads()``.
        fuse: fuse BatchNorm / residual additions / ReLU / MaxPool2d(2) into compiled layers.
        formats: ``"auto"``, ``"sparse"``, ``"dense"`` or ``"blocked"`` (force one format
            everywhere; for benchmarks), or one name per position.
        weights: ``"fp32"`` or ``"fp16"``: store the packed weights in half precision (half
            the bytes streamed per call; fp32 arithmetic; a layer whose weights exceed fp16's
            range keeps fp32 with a warning). See docs/performance.md for its accuracy.
        precision: ``"fp32"``, or ``"bf16"``: the Winograd, DWM and GEMM layers keep bf16
            weights (rounded to nearest even; fp32 accumulation). Their dense positions
            multiply in bf16 (input tiles rounded too; AVX512-BF16 ``vdpbf16ps`` where the
            CPU has it, else an exact software equivalent, same results and slower than fp32,
            with a warning), their sparse positions multiply the bf16 weights with the fp32
            tiles. A Winograd layer whose output bf16 would change by more than
            :data:`BF16_MAX_ERROR` (about OpenVINO's bf16 error; large tiles amplify the
            rounding) takes fp16 weights with fp32 tiles instead, or stays fp32 when those
            change it more too. The report gives each layer's choice and its rounding of the
            output; transforms, bias, BatchNorm, pooling and adder layers stay fp32. Not with
            ``weights="fp16"`` (bf16 weights are already 16-bit).

    Returns:
        The compiled copy (a :class:`CompiledModel` for traceable models, a compiled layer for
        a single layer); its ``compile_report`` attribute (a :class:`CompileReport`) says what
        each layer became.

    Examples:
        >>> from sparsewino.nn import WinogradConv2d
        >>> net = nn.Sequential(WinogradConv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        >>> fast = compile(net.eval())
        >>> fast.compile_report.compiled
        ['0']
        >>> x = torch.randn(1, 3, 12, 12)
        >>> with torch.no_grad():
        ...     torch.allclose(fast(x), net(x), atol=1e-4)
        True
    """
    check_threads(threads)
    if not isinstance(model, nn.Module):
        raise TypeError(f"compile() expects an nn.Module, got {type(model).__name__}")
    if weights not in ("fp32", "fp16"):
        raise ValueError(f"weights must be 'fp32' or 'fp16', got {weights!r}")
    if precision not in PRODUCT_PRECISIONS:
        raise ValueError(f"precision must be one of {PRODUCT_PRECISIONS} (the precision of the "
                         f"products), got {precision!r}")
    if precision == "bf16" and weights == "fp16":
        raise ValueError("precision='bf16' stores bf16 weights; leave weights='fp32' (fp16 "
                         "weights are for fp32 products)")
    report = CompileReport()
    report.backend = kernels.backend()
    report.precision = precision
    if precision == "bf16" and not kernels.bf16_hardware(report.backend):
        logger.warning("engine.compile: precision='bf16' on backend %r without AVX512-BF16 "
                       "instructions: the products are rounded in software (the same results "
                       "as the hardware, slower than fp32); use it to check accuracy, or "
                       "precision='fp32' for speed", report.backend)
    options = _Options(threads, fuse, formats, "bf16" if precision == "bf16" else weights,
                       report)
    with torch.inference_mode(False), torch.no_grad():      # works under inference_mode too
        result = _copy_model(model)
        result.eval()
        for parameter in result.parameters():
            parameter.requires_grad_(False)
        if tune is not None:
            if not isinstance(tune, torch.Tensor):
                raise TypeError(f"tune must be an example input tensor, got {type(tune).__name__}")
            options.shapes = record_input_shapes(result, tune)
            options.cache = TuningCache(default_cache_path() if tuning_cache == "default" else
                                        (Path(tuning_cache) if tuning_cache else None))
        result = _compile_module(result, "", options)
    result.compile_report = report
    return result
