"""What a pruning method is to the rest of the package: layer filter, problem builder, finishing step."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..mask import get_mask
from ..selection import ScoreProblem, ThresholdProblem, prune_problems

__all__ = ["MethodSpec", "run_method", "prune_layer", "element_problem"]


@dataclass(frozen=True)
class MethodSpec:
    """A pruning method as the model-level helper and the schedules see it.

    Attributes:
        name: registry name (``"magnitude"``, ``"spatial_winograd"``, ...).
        accept: ``accept(module, **options)`` returns ``None`` for a layer the method prunes
            in a model, else why not (a reason starting with ``"-"`` means "not a layer of
            interest", left out of reports).
        build: ``build(module, name, amount=..., **options)`` returns the layer's
            :class:`~sparsewino.prune.selection.ThresholdProblem` (raises a clear error for
            a layer it cannot prune).
        finish: optional ``finish(module, name, **options)`` run after the masks are applied
            (e.g. gradient scaling).
        supports_global: whether one amount across layers makes sense for the method.
    """

    name: str
    accept: Callable[..., str | None]
    build: Callable[..., ThresholdProblem]
    finish: Callable[..., None] | None = None
    supports_global: bool = True


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


def element_problem(module: nn.Module, name: str, scores: torch.Tensor, domain: str) -> ScoreProblem:
    """Unstructured problem: one unit per entry; entries masked earlier score ``-inf``."""
    mask = get_mask(module, name)
    scores = scores.detach().to(torch.float64)
    if mask is not None:
        scores = scores.masked_fill(mask.to(scores.device) == 0, float("-inf"))
    return ScoreProblem(module, scores, lambda keep: {name: keep}, domain)
