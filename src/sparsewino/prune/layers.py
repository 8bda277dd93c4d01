"""Which layers of a model are prunable, and the Winograd algorithms a layer is (or would be) run with."""
from __future__ import annotations

import fnmatch
from typing import Callable, Mapping, Sequence

from torch import nn

from ..errors import UserError
from ..nn.conv import TileArg
from ..nn.convert import NameFilter, eligibility
from ..nn.kinds import convertible_types, kind_of, winograd_layer_types
from ..winograd.algorithm import WinogradAlgorithm

# WINOGRAD_LAYERS / CONV_LAYERS stay importable (module __getattr__ below), not star-exported
__all__ = ["conv_layer_types", "NameFilter", "matches", "winograd_view",
           "is_winograd_layer", "layer_algorithms", "select_layers", "resolve_amounts", "SelectionError"]


class SelectionError(UserError, ValueError):
    """A layer selection (method, include/exclude, overrides) that picks nothing it should."""


def conv_layer_types() -> tuple[type[nn.Module], ...]:
    """Every convolution a method may prune: torch's, and the Winograd layers of every layer kind."""
    return (nn.Conv1d, nn.Conv2d, nn.Conv3d, *convertible_types(), *winograd_layer_types())


def __getattr__(name: str) -> tuple[type[nn.Module], ...]:
    # WINOGRAD_LAYERS / CONV_LAYERS read the layer-kind registry at each access
    if name == "WINOGRAD_LAYERS":
        return winograd_layer_types()
    if name == "CONV_LAYERS":
        return conv_layer_types()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def matches(name: str, module: nn.Module, spec: NameFilter) -> bool:
    """Whether ``name`` matches ``spec`` (glob patterns, exact names or a predicate)."""
    if spec is None:
        return False
    if callable(spec):
        return bool(spec(name, module))
    patterns = [spec] if isinstance(spec, str) else list(spec)
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def is_winograd_layer(module: nn.Module, domain: str | None = None) -> bool:
    """A WinogradConv1d/2d/3d (optionally only of ``domain`` ``"spatial"``/``"winograd"``)."""
    return isinstance(module, winograd_layer_types()) and (domain is None or module.domain == domain)


def winograd_view(module: nn.Module, tile: TileArg = 4, points=None) -> nn.Module | None:
    """The Winograd layer ``module`` is, or would become: itself for a Winograd layer.

    For a plain ``nn.Conv1d``/``2d``/``3d`` that :func:`sparsewino.nn.convert` could convert,
    a weightless ``meta``-device Winograd layer with the tile, pieces (DWM) and points it would
    get with ``tile`` and ``points`` (the layer's own resolution: ``"auto"``, per-dimension
    tuples, kernel size 1 -> trivial algorithm). ``None`` for anything else. Its
    ``algorithms``, ``decomposition`` and ``winograd_shape`` describe the Winograd domain.
    """
    if isinstance(module, winograd_layer_types()):
        return module
    if not isinstance(module, convertible_types()) or eligibility(module) is not None:
        return None
    layer_type = kind_of(module).winograd_type
    return layer_type(module.in_channels, module.out_channels, module.kernel_size,
                      stride=module.stride, padding=module.padding, groups=module.groups,
                      bias=False, device="meta", tile=tile, points=points)


def layer_algorithms(module: nn.Module, tile: TileArg = 4,
                     points=None) -> tuple[WinogradAlgorithm, ...] | None:
    """The algorithms F(m_i, r_i) of ``module`` (r_i: the piece size of a decomposed layer):
    those of :func:`winograd_view`, ``None`` for a layer that is not Winograd-eligible."""
    view = winograd_view(module, tile, points)
    return None if view is None else view.algorithms


def select_layers(model: nn.Module, accept: Callable[[nn.Module], str | None],
                  include: NameFilter = None, exclude: NameFilter = None
                  ) -> tuple[list[tuple[str, nn.Module]], dict[str, str]]:
    """Layers of ``model`` a method can prune, and why the others were skipped.

    Args:
        model: the model.
        accept: returns ``None`` for a layer the method takes, else the reason it does not;
            layers whose reason starts with ``"-"`` are not layers of interest at all (not
            reported).
        include: only these names (``None``: all).
        exclude: never these names.

    Returns:
        ``([(name, module), ...], {skipped_name: reason})``.
    """
    chosen: list[tuple[str, nn.Module]] = []
    skipped: dict[str, str] = {}
    for name, module in model.named_modules():
        reason = accept(module)
        if reason is not None and reason.startswith("-"):
            continue
        if reason is None and include is not None and not matches(name, module, include):
            reason = "not matched by include"
        if reason is None and matches(name, module, exclude):
            reason = "matched by exclude"
        if reason is None:
            chosen.append((name, module))
        else:
            skipped[name] = reason
    return chosen, skipped


def resolve_amounts(layers: Sequence[tuple[str, nn.Module]], amount: float | int,
                    overrides: Mapping[str, float | int] | None
                    ) -> tuple[dict[str, float | int], list[str]]:
    """Per-layer amounts from overrides (exact names or glob patterns), and the rest.

    Returns:
        ``({name: amount} for overridden layers, [names that take the default amount])``.

    Raises:
        SelectionError: an override matches no selected layer (a typo would silently do nothing).
    """
    overrides = dict(overrides or {})
    fixed: dict[str, float | int] = {}
    used = set()
    for name, module in layers:
        for pattern, value in overrides.items():
            if matches(name, module, pattern):
                fixed[name] = value
                used.add(pattern)
                break
    unused = [p for p in overrides if p not in used]
    if unused:
        raise SelectionError(f"overrides {unused} match no prunable layer; prunable layers: "
                         f"{[n for n, _ in layers]}")
    return fixed, [n for n, _ in layers if n not in fixed]

