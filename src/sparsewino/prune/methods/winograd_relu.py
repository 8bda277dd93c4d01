"""Winograd-ReLU (Liu, Pool, Han & Dally 2018): ReLU moved after the input transform, Q pruned by magnitude.

``winograd_relu(model)`` rewrites a model: each eligible convolution fed by an ``nn.ReLU``
becomes a Winograd-domain layer computing Y = Aᵀ[Q ⊙ ReLU(Bᵀ d B)]A, and that spatial ReLU
is replaced by ``nn.Identity``. Only what can be seen in ``nn.Sequential`` containers is
rewritten: a ReLU applied in a custom ``forward`` (``torch.relu(x)``) cannot be removed, and
such convolutions are left alone and reported.

``winograd_relu_prune`` then prunes Q by magnitude to a per-layer density (Liu et al. go
0.7 → 0.6 → … → 0.1 with retraining in between; see ``StepSchedule.from_densities``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from torch import nn

from ...nn.convert import ConversionReport, LayerDecision, convert, describe, eligibility
from ...nn.kinds import convertible_types, winograd_layer_types
from ..criteria import Magnitude, require_winograd_domain
from ..layers import NameFilter, is_winograd_layer, matches
from ..selection import ScoreProblem
from .base import MethodSpec, element_problem, prune_layer, register_method

__all__ = ["winograd_relu", "winograd_relu_prune", "WINOGRAD_RELU", "WinogradReluReport",
           "ReluDecision"]

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


def _flatten(prefix: str, seq: nn.Sequential) -> list[tuple[str, nn.Module, nn.Module, str]]:
    """Leaves of a tree of nested Sequentials in execution order: (name, module, parent, key)."""
    leaves = []
    for key, child in seq.named_children():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(child, nn.Sequential):
            leaves += _flatten(name, child)
        else:
            leaves.append((name, child, seq, key))
    return leaves


def _chains(model: nn.Module) -> list[list[tuple[str, nn.Module, nn.Module, str]]]:
    parents = {id(child): parent for parent in model.modules() for child in parent.children()}
    chains = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential) and not isinstance(parents.get(id(module)), nn.Sequential):
            chains.append(_flatten(name, module))
    return chains


def _conv_reason(module: nn.Module) -> str | None:
    if isinstance(module, winograd_layer_types()):
        return None
    return eligibility(module)


def winograd_relu(model: nn.Module, tile: int | Sequence[int] = 2, points: Any = None,
                  include: NameFilter = None, exclude: NameFilter = None, decompose: Any = "auto"
                  ) -> tuple[nn.Module, WinogradReluReport]:
    """Rewrite ``model`` to Winograd-ReLU layers, in place.

    Every eligible convolution (plain ``nn.Conv1d``/``2d``/``3d``, DWM-decomposed when strided
    or larger than 3 taps, or a Winograd layer) whose input is produced by an ``nn.ReLU`` in the
    same ``nn.Sequential`` tree (possibly
    through max-pooling, dropout or identity, which commute with ReLU) becomes a
    Winograd-domain layer with ``winograd_relu=True``, and the ReLU becomes ``nn.Identity``.
    This changes the network (the ReLU now acts on Bᵀ d B): retrain afterwards.

    Args:
        model: the model, changed in place (the root itself cannot be a convolution).
        tile: output tile m for converted convolutions (Liu et al. used F(2×2, 3×3)).
        points: interpolation points (``None``: the defaults).
        include, exclude: convolution-name filters.
        decompose: DWM mode of :func:`sparsewino.nn.convert` (``"none"``: strided convolutions
            are left alone).

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
    for chain in _chains(model):
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
    chosen: dict[str, tuple[str, str]] = {}          # conv name -> (ReLU name, original type)
    order = [name for name, _ in model.named_modules()]
    for name, module in model.named_modules():
        if not isinstance(module, (*convertible_types(), *winograd_layer_types())):
            continue
        relu_name, reason = in_chain.get(name, (None, "not inside an nn.Sequential: its input is "
                                                      "computed in a custom forward"))
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
        parent, key = relu_slot[relu_name]
        setattr(parent, key, nn.Identity())
        report.append(ReluDecision(name, kind, True,
                                   f"Winograd-ReLU, Winograd domain, "
                                   f"{describe(layer.algorithms, layer.decomposition)}; "
                                   f"ReLU {relu_name} replaced by Identity", relu_name))
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
