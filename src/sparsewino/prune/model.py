"""Model-level pruning: any method over a model, per-layer or global amounts, overrides, exclusions."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from torch import nn

from .layers import NameFilter, SelectionError, resolve_amounts, select_layers
from .methods.base import METHODS, MethodSpec, run_method
from .methods.particle_filter import ParticleFilter

__all__ = ["prune_model", "prunable_layers", "unwrap_model", "resolve_method"]

logger = logging.getLogger("sparsewino")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside ``DistributedDataParallel``/``DataParallel`` wrappers (else itself)."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


def resolve_method(method: str | MethodSpec) -> MethodSpec:
    """The :class:`MethodSpec` of a method that prunes to an amount (by name or as a spec).

    Raises:
        UnknownNameError: no such method (the message lists them).
        ValueError: the method prunes while training (use its callback instead).
    """
    spec = method if isinstance(method, MethodSpec) else METHODS.lookup(method)
    if spec.trains:
        raise ValueError(f"method {spec.name!r} prunes while training, not to an amount: pass "
                         f"its callback ({getattr(spec.callback, '__name__', spec.callback)}) to "
                         "fit(), or use it in a recipe's prune stage with a finetune")
    return spec


def prunable_layers(model: nn.Module, method: str | MethodSpec, /, include: NameFilter = None,
                    exclude: NameFilter = None, **options: Any
                    ) -> tuple[list[tuple[str, nn.Module]], dict[str, str]]:
    """Layers ``method`` would prune in ``model`` and, for the others, why not.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 1))
        >>> layers, skipped = prunable_layers(net, "spatial_winograd")
        >>> [n for n, _ in layers], skipped
        (['0'], {'2': 'not Winograd-eligible: 1x1 kernel: Winograd saves no multiplications'})
    """
    spec = resolve_method(method)
    return select_layers(unwrap_model(model), lambda m: spec.accept(m, **options), include, exclude)


def prune_model(model: nn.Module, method: str | MethodSpec, amount: float | int, /, *,
                overrides: Mapping[str, float | int] | None = None, include: NameFilter = None,
                exclude: NameFilter = None, scope: str = "layer", name: str = "weight",
                **options: Any) -> nn.Module:
    """Prune every layer of ``model`` that ``method`` applies to.

    Args:
        model: the model (a DDP/DataParallel wrapper is looked through).
        method: a name from :data:`~sparsewino.prune.METHODS` that prunes to an amount
            (``"magnitude"``, ``"spatial_winograd"``, ``"winograd_domain"``,
            ``"winograd_relu"``, ``"structured"``) or a ``MethodSpec``.
        amount: the target (fraction or count, in the method's units: weights, Winograd
            positions, channels, ...).
        overrides: per-layer amounts by exact name or glob pattern, e.g. ``{"features.0": 0.2}``
            (the authors pruned the first conv at 20 %); overridden layers are always pruned
            layer by layer, also with ``scope="global"``. A pattern that matches no prunable
            layer is an error.
        include: only layers whose names match (glob patterns or a predicate).
        exclude: never prune layers whose names match.
        scope: ``"layer"`` (each layer to ``amount``) or ``"global"`` (one threshold across
            the layers, ``amount`` of all their units, like ``prune.global_unstructured``).
        name: parameter name.
        **options: passed to the method (e.g. ``tile``, ``ifm``, ``grad_power``,
            ``granularity``, ``importance``, ``evaluate``).

    Returns:
        ``model``; each pruned tensor's :func:`~sparsewino.prune.pruning_info` says what it
        reached.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
        >>> net = prune_model(net, "magnitude", 0.5, overrides={"0": 0.2})
        >>> [round(float((m.weight == 0).float().mean()), 2) for m in (net[0], net[2])]
        [0.2, 0.5]
    """
    spec = resolve_method(method)
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    if scope == "global" and not spec.supports_global:
        raise ValueError(f"method {spec.name!r} has no global amount; use scope='layer'")
    layers, skipped = prunable_layers(model, spec, include, exclude, **options)
    if not layers:
        raise SelectionError(_nothing_to_prune(spec, skipped))
    importance = options.get("importance")
    if (importance == "particle_filter" or isinstance(importance, ParticleFilter)) and scope == "global":
        raise ValueError("particle filtering searches one layer at a time; use scope='layer'")
    if spec.takes_model:
        options.setdefault("model", unwrap_model(model))
    fixed, rest = resolve_amounts(layers, amount, overrides)
    modules = dict(layers)
    for layer_name, layer_amount in fixed.items():
        run_method(spec, [modules[layer_name]], [layer_amount], None, name, options)
    if rest:
        rest_modules = [modules[n] for n in rest]
        if scope == "global":
            run_method(spec, rest_modules, None, amount, name, options)
        else:
            run_method(spec, rest_modules, [amount] * len(rest), None, name, options)
    for layer_name, reason in skipped.items():
        logger.info("prune_model(%s): skipped %s: %s", spec.name, layer_name, reason)
    return model


#: What to do when a method finds no layer in the state it prunes.
_STATE_HINTS = {
    "winograd": "convert the model to the Winograd domain first (a convert stage with domain: "
                "winograd, or `sparsewino convert CHECKPOINT --domain winograd`)",
    "winograd_relu": "rewrite it as a Winograd-ReLU model first (the winograd_relu method)",
    "spatial": "convert it to spatial-domain Winograd layers first (a convert stage, or "
               "`sparsewino convert CHECKPOINT`)",
}


def _nothing_to_prune(spec: Any, skipped: dict[str, str]) -> str:
    """Why no layer can be pruned by ``spec``, and what to do about it."""
    text = f"no layer of the model can be pruned by {spec.name!r}"
    if skipped:
        text += "; skipped: " + ", ".join(f"{name} ({why})" for name, why in skipped.items())
    else:
        text += "; the model has no layer of the kind it prunes"
    hints = [_STATE_HINTS[state] for state in spec.states if state in _STATE_HINTS]
    if spec.states and "conv" not in spec.states and hints:
        text += f". {spec.name!r} prunes {' or '.join(spec.states)} layers: {hints[0]}"
    return text
