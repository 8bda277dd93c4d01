"""Execution chains of a model: the leaves of its top-level ``nn.Sequential`` trees, in order.

Whole-model rewrites that must know what feeds a layer or what reads its output (the
Winograd-ReLU rewrite, folding a pruned feature map into the next layer) follow these chains;
what a custom ``forward`` does between modules is invisible to them.
"""
from __future__ import annotations

from torch import nn

__all__ = ["Leaf", "sequential_chains", "find_in_chains"]

#: (qualified name, module, parent Sequential, key in the parent)
Leaf = tuple[str, nn.Module, nn.Module, str]


def _flatten(prefix: str, seq: nn.Sequential) -> list[Leaf]:
    """Leaves of a tree of nested Sequentials in execution order."""
    leaves = []
    for key, child in seq.named_children():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(child, nn.Sequential):
            leaves += _flatten(name, child)
        else:
            leaves.append((name, child, seq, key))
    return leaves


def sequential_chains(model: nn.Module) -> list[list[Leaf]]:
    """One chain per outermost ``nn.Sequential`` of ``model`` (nested ones are followed).

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Conv2d(2, 2, 3)))
        >>> [name for name, *_ in sequential_chains(net)[0]]
        ['0', '1.0', '1.1']
    """
    parents = {id(child): parent for parent in model.modules() for child in parent.children()}
    return [_flatten(name, module) for name, module in model.named_modules()
            if isinstance(module, nn.Sequential)
            and not isinstance(parents.get(id(module)), nn.Sequential)]


def find_in_chains(model: nn.Module, module: nn.Module) -> tuple[list[Leaf], int] | None:
    """The chain holding ``module`` and its position there, or ``None``."""
    for chain in sequential_chains(model):
        for index, leaf in enumerate(chain):
            if leaf[1] is module:
                return chain, index
    return None
