"""Winograd-ReLU (Liu, Pool, Han & Dally 2018): ReLU moved after the input transform, Q pruned by magnitude.

``winograd_relu(model)`` rewrites a model: each eligible convolution fed by an ``nn.ReLU``
becomes a Winograd-domain layer computing Y = Aᵀ[Q ⊙ ReLU(Bᵀ d B)]A, and that spatial ReLU
is replaced by ``nn.Identity`` when an ``nn.Sequential`` shows it feeds only that layer. A
ReLU that the traced ``forward`` shows feeding the convolution but that a custom ``forward``
applies, or that other layers read too (the input of a ResNet block also feeds the shortcut),
stays; the convolution still gets the Winograd-domain ReLU.

``winograd_relu_prune`` then prunes Q by magnitude to a per-layer density (Liu et al. go
0.7 → 0.6 → … → 0.1 with retraining in between; see ``StepSchedule.from_densities``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import fx, nn

from ...nn.convert import ConversionReport, LayerDecision, convert, describe, eligibility
from ...nn.kinds import convertible_types, winograd_layer_types
from ..chains import sequential_chains
from ..criteria import Magnitude, require_winograd_domain
from ..layers import NameFilter, is_winograd_layer, matches
from ..selection import ScoreProblem
from .base import MethodSpec, element_problem, prune_layer, register_method

__all__ = ["winograd_relu", "winograd_relu_prune", "WINOGRAD_RELU", "WinogradReluReport",
           "ReluDecision"]

logger = logging.getLogger("sparsewino")

#: Modules a ReLU commutes with (ReLU(f(x)) == f(ReLU(x))), so it may sit before them.
_COMMUTES_WITH_RELU = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout3d, nn.MaxPool2d,
                       nn.MaxPool3d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


@dataclass(frozen=True)
class ReluDecision(LayerDecision):
    """What ``winograd_relu`` did with one convolution, and the ReLU it removed."""

    removed_relu: str | None = None


class WinogradReluReport(ConversionReport):
    """List of :class:`ReluDecision` (a :class:`~sparsewino.nn.ConversionReport`)."""

    @property
    def removed_relus(self) -> list[str]:
        return [d.removed_relu for d in self if d.removed_relu]


_RELU_FUNCTIONS = (torch.relu, torch.nn.functional.relu)


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return type(modules.get(str(node.target))) is nn.ReLU
    if node.op == "call_function":
        return node.target in _RELU_FUNCTIONS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _traced_relu_inputs(model: nn.Module) -> dict[str, str]:
    """Convolution name -> the ReLU its input comes from, as the traced ``forward`` shows.

    Follows ``torch.fx`` graph edges backwards through modules that commute with ReLU. Finds
    what ``nn.Sequential`` chains cannot see: a ReLU applied in a custom ``forward`` or one
    whose output other layers read too (a ResNet block's input feeds the shortcut and conv1).
    Empty when the model cannot be traced.
    """
    layer_types = (*convertible_types(), *winograd_layer_types())

    class _Tracer(fx.Tracer):
        def is_leaf_module(self, module: nn.Module, name: str) -> bool:
            return isinstance(module, layer_types) or super().is_leaf_module(module, name)

    try:
        graph = _Tracer().trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure: fall back to the chains
        logger.info("winograd_relu: cannot trace %s (%s); following nn.Sequential chains only",
                    type(model).__name__, exc)
        return {}
    modules = dict(model.named_modules(remove_duplicate=False))
    found = {}
    for node in graph.nodes:
        if node.op != "call_module" or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        if not isinstance(modules.get(str(node.target)), layer_types):
            continue
        source = node.args[0]
        while source.op == "call_module" and isinstance(modules.get(str(source.target)),
                                                         _COMMUTES_WITH_RELU):
            source = source.args[0]
        if _is_relu(source, modules):
            found[str(node.target)] = str(source.target if source.op == "call_module" else
                                          getattr(source.target, "__name__", source.target))
    return found


def _conv_reason(module: nn.Module) -> str | None:
    if isinstance(module, winograd_layer_types()):
        return None
    return eligibility(module)


def winograd_relu(model: nn.Module, tile: int | Sequence[int] = 2, points: Any = None,
                  include: NameFilter = None, exclude: NameFilter = None, decompose: Any = "auto",
                  traced: bool = True
                  ) -> tuple[nn.Module, WinogradReluReport]:
    """Rewrite ``model`` to Winograd-ReLU layers, in place.

    Every eligible convolution (plain ``nn.Conv1d``/``2d``/``3d``, DWM-decomposed when strided
    or larger than 3 taps, or a Winograd layer) whose input is produced by an ``nn.ReLU`` in the
    same ``nn.Sequential`` tree (possibly
    through max-pooling, dropout or identity, which commute with ReLU) becomes a
    Winograd-domain layer with ``winograd_relu=True``, and the ReLU becomes ``nn.Identity``.
    With ``traced`` the model's ``forward`` is also followed (``torch.fx``): a convolution fed
    by a ReLU that a custom ``forward`` applies or that other layers read too (a ResNet
    block's first conv: the block input also feeds the shortcut) becomes a Winograd-ReLU layer
    as well, and that spatial ReLU stays. So every 3×3 stride-1 conv of a ResNet-18 is
    rewritten, as Liu et al. did. This changes the network (the ReLU now acts on Bᵀ d B):
    retrain afterwards.

    Args:
        model: the model, changed in place (the root itself cannot be a convolution).
        tile: output tile m for converted convolutions (Liu et al. used F(2×2, 3×3)).
        points: interpolation points (``None``: the defaults).
        include, exclude: convolution-name filters.
        decompose: DWM mode of :func:`sparsewino.nn.convert` (``"none"``: strided convolutions
            are left alone).
        traced: also rewrite convolutions found by tracing ``forward`` (spatial ReLU kept);
            ``False``: only what ``nn.Sequential`` chains show.

    Returns:
        ``(model, report)``: the report lists every convolution, converted or not, the ReLU
        removed for it, and why a layer was left alone.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        ...                     nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        >>> net, report = winograd_relu(net)
        >>> report.converted, report.removed_relus, type(net[1]).__name__
        (['2'], ['1'], 'Identity')
    """
    report = WinogradReluReport()
    uses: dict[int, int] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        uses[id(module)] = uses.get(id(module), 0) + 1
    in_chain: dict[str, tuple[str | None, str]] = {}     # conv name -> (relu name, reason)
    relu_slot: dict[str, tuple[nn.Module, str]] = {}
    for chain in sequential_chains(model):
        for i, (name, module, _, _) in enumerate(chain):
            if not isinstance(module, (*convertible_types(), *winograd_layer_types())):
                continue
            j = i - 1
            while j >= 0 and isinstance(chain[j][1], _COMMUTES_WITH_RELU):
                j -= 1
            if j < 0:
                in_chain[name] = (None, "no ReLU before it in its nn.Sequential (model input, "
                                        "or a ReLU applied in a custom forward)")
                continue
            prev_name, prev, parent, key = chain[j]
            if type(prev) is not nn.ReLU:
                in_chain[name] = (None, f"its input comes from {prev_name} "
                                        f"({type(prev).__name__}), not an nn.ReLU")
            elif uses.get(id(prev), 0) > 1:
                in_chain[name] = (None, f"ReLU {prev_name} is one module used in several places")
            else:
                in_chain[name] = (prev_name, "")
                relu_slot[prev_name] = (parent, key)
    traced_inputs = _traced_relu_inputs(model) if traced else {}
    chosen: dict[str, tuple[str, str]] = {}          # conv name -> (ReLU name, original type)
    kept: dict[str, str] = {}                        # conv name -> the spatial ReLU that stays
    order = [name for name, _ in model.named_modules()]
    for name, module in model.named_modules():
        if not isinstance(module, (*convertible_types(), *winograd_layer_types())):
            continue
        relu_name, reason = in_chain.get(name, (None, "not inside an nn.Sequential: its input is "
                                                      "computed in a custom forward"))
        if relu_name is None and name in traced_inputs:
            relu_name, reason = traced_inputs[name], ""
            kept[name] = relu_name
        conv_reason = _conv_reason(module)
        if conv_reason is None and decompose == "none" and not isinstance(module, winograd_layer_types()) \
                and any(st != 1 for st in module.stride):
            conv_reason = f"stride {tuple(module.stride)} != 1 (decompose='none')"
        if conv_reason is not None:
            reason = conv_reason
        elif include is not None and not matches(name, module, include):
            reason = "not matched by include"
        elif matches(name, module, exclude):
            reason = "matched by exclude"
        if relu_name is None or reason:
            report.append(ReluDecision(name, type(module).__name__, False, reason))
        else:
            chosen[name] = (relu_name, type(module).__name__)
    convert(model, tile=tile, domain="winograd", points=points, winograd_relu=True,
            include=lambda n, m: n in chosen, decompose=decompose)
    for name, (relu_name, kind) in chosen.items():
        layer = model.get_submodule(name)        # convert() switched spatial Winograd layers
        layer.winograd_relu = True               # existing Winograd layers keep their flag
        algorithm = f"Winograd-ReLU, Winograd domain, {describe(layer.algorithms, layer.decomposition)}"
        if name in kept:
            report.append(ReluDecision(name, kind, True, f"{algorithm}; spatial ReLU {relu_name} "
                                       "kept (applied in a custom forward or read by other "
                                       "layers, e.g. a shortcut)"))
            continue
        parent, key = relu_slot[relu_name]
        setattr(parent, key, nn.Identity())
        report.append(ReluDecision(name, kind, True,
                                   f"{algorithm}; ReLU {relu_name} replaced by Identity", relu_name))
    report.sort(key=lambda decision: order.index(decision.name))
    return model, report


def _accept(module: nn.Module, **_: object) -> str | None:
    if not is_winograd_layer(module):
        return "-"
    if module.domain != "winograd" or not module.winograd_relu:
        return "not a Winograd-ReLU layer (run sparsewino.prune.winograd_relu(model) first)"
    return None


def _build(module: nn.Module, name: str = "weight", **_: object) -> ScoreProblem:
    require_winograd_domain(module, name, "winograd_relu pruning")
    if not module.winograd_relu:
        raise ValueError(f"{type(module).__name__} has winograd_relu=False; rewrite the model "
                         "with sparsewino.prune.winograd_relu(model) first (or use winograd_domain)")
    return element_problem(module, name, Magnitude()(module, name), "winograd")


def winograd_relu_prune(module: nn.Module, density: float, name: str = "weight") -> nn.Module:
    """Prune a Winograd-ReLU layer's Q by magnitude down to ``density`` (kept fraction).

    Args:
        module: a Winograd-domain layer with ``winograd_relu=True``.
        density: fraction of Q's entries kept (Liu et al.: 0.7 → 0.6 → … → 0.1 by steps);
            entries pruned before stay pruned.
        name: must be ``"weight"``.

    Returns:
        ``module``.

    Examples:
        >>> from sparsewino.nn import WinogradConv2d
        >>> layer = WinogradConv2d(4, 4, 3, padding=1, tile=2, domain="winograd", winograd_relu=True)
        >>> float((winograd_relu_prune(layer, density=0.25).weight != 0).float().mean())
        0.25
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density is the kept fraction and must lie in [0, 1], got {density!r}")
    return prune_layer(WINOGRAD_RELU, module, 1.0 - density, name)


WINOGRAD_RELU = register_method(MethodSpec(
    "winograd_relu", _accept, _build, states=("winograd_relu",), densities=True,
    description="Winograd-ReLU (Liu et al.): magnitude pruning of Q in layers whose ReLU acts "
                "on the transformed input",
    layer_function=winograd_relu_prune,
    usage="sp.winograd_relu(model); sp.winograd_relu_prune(layer, density)",
    prunes="Q of winograd_relu=True layers", unit="entries of Q"))
