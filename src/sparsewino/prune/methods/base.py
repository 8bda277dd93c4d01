"""What a pruning method is to the rest of the package, and the registry every method is listed in.

A method is one :class:`MethodSpec`: which layers it takes, how it builds a layer's threshold
problem (or, for a method that prunes while training, its training callback), its options as a
dataclass, and the model state it needs. The recipe schema, the runner, the CLI's choices and
flags and the docs tables are generated from :data:`METHODS`; adding a method is one new file
in ``sparsewino/prune/methods/`` that ends with ``register_method(MethodSpec(...))`` and one
import line in ``sparsewino/prune/methods/__init__.py`` (see docs/contributing.md).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from ...registry import Registry
from ..mask import get_mask
from ..selection import ScoreProblem, ThresholdProblem, prune_problems

__all__ = ["MethodSpec", "METHODS", "register_method", "PruneContext", "NoOptions", "option",
           "option_fields", "validate_options", "method_options", "run_method", "prune_layer",
           "element_problem", "MODEL_STATES"]

#: What a model's convolutions can be, in pipeline order (a method lists the states it prunes):
#: plain convolutions, spatial-domain Winograd layers, Winograd-domain layers, Winograd-ReLU layers.
MODEL_STATES = ("conv", "spatial", "winograd", "winograd_relu")


def option(help: str, default: Any = None, *, low: float | None = None, high: float | None = None,
           high_open: bool = False) -> Any:
    """A field of a method's options dataclass: its help text and the range a value must lie in.

    ``default=None`` means "the method's own default" (state it in ``help``); ``low``/``high``
    are checked by :func:`validate_options` (NaN is always refused).
    """
    return field(default=default, metadata={"help": help, "low": low, "high": high,
                                            "high_open": high_open})


@dataclass(frozen=True)
class NoOptions:
    """Options of a method that has none."""


def option_fields(options: type | Any) -> list[dataclasses.Field]:
    """The fields of an options dataclass (class or instance)."""
    return list(dataclasses.fields(options))


def validate_options(options: Any) -> None:
    """Check every set option of ``options`` against the range its field declares.

    Raises:
        ValueError: a value outside its range, or NaN; the message names the option.
    """
    for item in option_fields(options):
        value = getattr(options, item.name)
        if value is None or isinstance(value, (bool, str)) or not isinstance(value, (int, float)):
            continue
        low, high = item.metadata.get("low"), item.metadata.get("high")
        if math.isnan(value):
            raise ValueError(f"{item.name} must be a number, got {value}")
        if low is not None and value < low:
            raise ValueError(f"{item.name} must be >= {low}, got {value}")
        if high is not None and (value > high or (item.metadata.get("high_open") and value == high)):
            raise ValueError(f"{item.name} must be {'<' if item.metadata.get('high_open') else '<='} "
                             f"{high}, got {value}")


@dataclass
class PruneContext:
    """What a method's options may draw on besides themselves (filled by the runner or the CLI).

    Attributes:
        tile: the pipeline's default output tile m (for methods that assume an algorithm).
        seed: the run's seed (for searches).
        model: the whole model being pruned (for searches that evaluate it).
        validation_batches: returns held-out ``(inputs, targets)`` batches, when there are any.
    """

    tile: int = 4
    seed: int = 0
    model: nn.Module | None = None
    validation_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]] | None = None


@dataclass(frozen=True)
class MethodSpec:
    """A pruning method as the model-level helper, the schedules and the pipeline see it.

    Attributes:
        name: registry name (``"magnitude"``, ``"spatial_winograd"``, ...).
        accept: ``accept(module, **options)`` returns ``None`` for a layer the method prunes
            in a model, else why not (a reason starting with ``"-"`` means "not a layer of
            interest", left out of reports).
        build: ``build(module, name, amount=..., **options)`` returns the layer's
            :class:`~sparsewino.prune.selection.ThresholdProblem` (raises a clear error for
            a layer it cannot prune); ``None`` for a method that prunes while training.
        finish: optional ``finish(module, name, **options)`` run after the masks are applied
            (e.g. gradient scaling).
        supports_global: whether one amount across layers makes sense for the method.
        description: one line for the docs and the CLI help.
        options: dataclass of the method's options in recipes and on the command line (fields
            made with :func:`option`; ``None`` = the method's default).
        states: the model states (:data:`MODEL_STATES`) the method prunes; empty: any.
        layer_function: the public function that prunes one layer (or the callback class).
        usage: how to call it, for the docs (``"sp.magnitude(layer, amount)"``).
        prunes: what it prunes, for the docs.
        unit: what its amount counts, for the docs.
        densities: whether a recipe may give kept fractions (``densities``) instead of targets.
        prepare: optional ``prepare(values, context) -> values``: completes the set options
            from a :class:`PruneContext` (defaults drawn from the run, objects built from names).
        callback: for a method that prunes while training: ``callback(model, include=...,
            exclude=..., **options)`` returning a training callback with ``describe() -> str``
            (the step label) and ``target`` (the sparsity aimed at, or ``None``).
        takes_model: ``build``/``finish`` accept ``model=`` (the whole model being pruned);
            :func:`~sparsewino.prune.prune_model` passes it.
    """

    name: str
    accept: Callable[..., str | None]
    build: Callable[..., ThresholdProblem] | None
    finish: Callable[..., None] | None = None
    supports_global: bool = True
    description: str = ""
    options: type = NoOptions
    states: tuple[str, ...] = ()
    layer_function: Callable[..., Any] | None = None
    usage: str = ""
    prunes: str = ""
    unit: str = ""
    densities: bool = False
    prepare: Callable[[dict[str, Any], PruneContext], dict[str, Any]] | None = None
    callback: Callable[..., Any] | None = None
    takes_model: bool = False

    def __post_init__(self) -> None:
        if (self.build is None) == (self.callback is None):
            raise ValueError(f"method {self.name!r}: give exactly one of build (pruned to an "
                             "amount) or callback (pruned while training)")
        unknown = [s for s in self.states if s not in MODEL_STATES]
        if unknown:
            raise ValueError(f"method {self.name!r}: unknown model states {unknown}; "
                             f"known: {MODEL_STATES}")
        if not dataclasses.is_dataclass(self.options):
            raise TypeError(f"method {self.name!r}: options must be a dataclass")

    @property
    def trains(self) -> bool:
        """Whether the method prunes while training (a callback) instead of to an amount."""
        return self.callback is not None


#: Every pruning method, by name: prune_model(), PruningCallback, recipes, the CLI and the docs.
METHODS: Registry[MethodSpec] = Registry("pruning method")


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to :data:`METHODS` (its name must be new) and return it."""
    return METHODS.register(spec)


def method_options(spec: MethodSpec, options: Any = None, context: PruneContext | None = None
                   ) -> dict[str, Any]:
    """Keyword arguments for ``spec``'s functions from its options dataclass and a context.

    Options left at ``None`` are left out (the method's defaults apply); ``spec.prepare``
    then completes them from ``context``.

    Examples:
        >>> method_options(METHODS.lookup("spatial_winograd"), context=PruneContext(tile=2))
        {'tile': 2}
    """
    options = spec.options() if options is None else options
    if not isinstance(options, spec.options):
        raise TypeError(f"method {spec.name!r} takes {spec.options.__name__}, got "
                        f"{type(options).__name__}")
    validate_options(options)
    values = {f.name: getattr(options, f.name) for f in option_fields(options)
              if getattr(options, f.name) is not None}
    if spec.prepare is not None:
        values = spec.prepare(values, context or PruneContext())
    return values


def run_method(spec: MethodSpec, modules: Sequence[nn.Module], amounts: Sequence[Any] | None,
               global_amount: Any, name: str, options: dict[str, Any]) -> list[float]:
    """Prune ``modules`` with ``spec``: each at its amount, or all at one ``global_amount``.

    Returns:
        The sparsity each layer reached (counted in the method's domain).
    """
    if global_amount is None:
        reached = []
        for module, amount in zip(modules, amounts):
            problem = spec.build(module, name=name, amount=amount, **options)
            reached += prune_problems([problem], [amount], spec.name)
    else:
        problems = [spec.build(module, name=name, amount=None, **options) for module in modules]
        reached = prune_problems(problems, None, spec.name, global_amount=global_amount)
    if spec.finish is not None:
        for module in modules:
            spec.finish(module, name=name, **options)
    return reached


def prune_layer(spec: MethodSpec, module: nn.Module, amount: float | int, name: str = "weight",
                **options: Any) -> nn.Module:
    """Prune one layer with ``spec`` to ``amount`` (the shared body of the layer functions)."""
    run_method(spec, [module], [amount], None, name, options)
    return module


def element_problem(module: nn.Module, name: str, scores: torch.Tensor, domain: str,
                    block: int = 1) -> ScoreProblem:
    """Unstructured problem: one unit per entry; entries masked earlier score ``-inf``.

    ``block > 1``: the units are blocks of ``block`` consecutive output channels (dim 0) at one
    index of every other dim (for a Winograd-domain Q: one position and input channel), scored
    by the mean of their entries' scores (entries masked earlier count 0; a block with every
    entry masked scores ``-inf``), pruned whole; the last block may be shorter. Amounts still
    count entries. ``block=8`` is the engine's blocked format (``engine.packing``).
    """
    mask = get_mask(module, name)
    scores = scores.detach().to(torch.float64)
    pruned = (mask.to(scores.device) == 0 if mask is not None
              else torch.zeros_like(scores, dtype=torch.bool))
    if block == 1:
        return ScoreProblem(module, scores.masked_fill(pruned, float("-inf")),
                            lambda keep: {name: keep}, domain)
    if block < 1:
        raise ValueError(f"block must be >= 1 output channels, got {block}")
    rows = scores.shape[0]
    groups = -(-rows // block)
    index = torch.arange(rows, device=scores.device) // block            # block of each row
    shape = (groups, *scores.shape[1:])
    zeros = torch.zeros(shape, dtype=torch.float64, device=scores.device)
    sums = zeros.index_add(0, index, scores.masked_fill(pruned, 0.0))
    alive = zeros.index_add(0, index, (~pruned).to(torch.float64))
    sizes = torch.bincount(index, minlength=groups).to(torch.float64)
    sizes = sizes.reshape(-1, *([1] * (scores.dim() - 1))).expand(shape)
    block_scores = (sums / sizes).masked_fill(alive == 0, float("-inf"))
    return ScoreProblem(module, block_scores, lambda keep: {name: keep.index_select(0, index)},
                        domain, sizes=sizes)
