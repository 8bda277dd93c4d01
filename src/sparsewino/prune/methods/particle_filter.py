"""Particle-filter search for which units to prune (Anwar, Hwang & Sung 2017), and accuracy evaluators.

Particles are candidate masks (each prunes exactly the requested number of units). Each
generation weights the particles by the accuracy of the network with that mask on held-out
data, resamples them by weight, perturbs each by swapping pruned and kept units, and the
best mask ever seen wins. Everything random comes from one seeded ``torch.Generator``.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable

import torch
from torch import nn

from ..mask import temporary_mask

__all__ = ["ParticleFilter", "batch_accuracy"]

Evaluate = Callable[[nn.Module], float]


def batch_accuracy(inputs: torch.Tensor | Iterable[tuple[torch.Tensor, torch.Tensor]],
                   targets: torch.Tensor | None = None) -> Evaluate:
    """An ``evaluate(model) -> accuracy`` function on fixed held-out data.

    Args:
        inputs: a batch of inputs (with ``targets``), or an iterable of ``(inputs, targets)``
            batches (kept as a list, so pass a small one).
        targets: class indices for ``inputs``.

    Returns:
        A function running ``model`` in eval mode without gradients and returning the
        fraction of correct argmax predictions (the model's mode is restored).

    Examples:
        >>> net = nn.Linear(2, 2)
        >>> evaluate = batch_accuracy(torch.eye(2), torch.tensor([0, 1]))
        >>> 0.0 <= evaluate(net) <= 1.0
        True
    """
    batches = [(inputs, targets)] if targets is not None else list(inputs)  # type: ignore[arg-type]
    if not batches:
        raise ValueError("batch_accuracy needs at least one batch")

    def evaluate(model: nn.Module) -> float:
        was_training = model.training
        model.eval()
        correct = seen = 0
        try:
            with torch.no_grad():
                for x, y in batches:
                    correct += int((model(x).argmax(dim=1) == y).sum())
                    seen += y.numel()
        finally:
            model.train(was_training)
        return correct / max(seen, 1)

    return evaluate


class ParticleFilter:
    """Search for the units to prune by particle filtering (an importance "criterion").

    Args:
        evaluate: ``evaluate(model) -> float``, higher is better (e.g. :func:`batch_accuracy`).
        model: the network ``evaluate`` runs (default: the pruned layer itself; the
            model-level helper fills in the model it prunes).
        particles: particles per generation.
        iterations: generations (each evaluates every particle not seen before).
        swaps: pruned/kept unit pairs swapped to perturb a particle.
        temperature: particle weights are softmax(score / temperature).
        seed: seed of the search (same seed, same result).

    Examples:
        >>> pf = ParticleFilter(batch_accuracy(x_val, y_val), model=net, seed=0)  # doctest: +SKIP
        >>> structured(net[0], 2, "feature_map", importance=pf)                    # doctest: +SKIP
    """

    def __init__(self, evaluate: Evaluate, model: nn.Module | None = None, particles: int = 16,
                 iterations: int = 8, swaps: int = 1, temperature: float = 0.02,
                 seed: int = 0) -> None:
        if not callable(evaluate):
            raise TypeError("ParticleFilter: evaluate must be a function model -> score "
                            "(see sparsewino.prune.batch_accuracy)")
        if particles < 1 or iterations < 0 or swaps < 1 or temperature <= 0:
            raise ValueError("ParticleFilter: need particles >= 1, iterations >= 0, swaps >= 1 "
                             "and temperature > 0")
        self.evaluate, self.model = evaluate, model
        self.particles, self.iterations, self.swaps = particles, iterations, swaps
        self.temperature, self.seed = temperature, seed
        self.history: list[float] = []        # best score after each generation

    def search(self, module: nn.Module, expand: Callable[[torch.Tensor], dict[str, torch.Tensor]],
               prior: torch.Tensor, count: int, model: nn.Module | None = None) -> torch.Tensor:
        """Best set of ``count`` units to prune; returns a bool "keep" tensor over units.

        Args:
            module: the layer being pruned.
            expand: kept units (bool, shape of ``prior``) -> masks per tensor name.
            prior: cheap scores per unit (``-inf`` = already pruned); the first particle
                prunes the lowest, the others start at random.
            count: units to prune in total (already pruned ones included).
            model: the network to evaluate when this filter has no ``model`` (default ``module``).
        """
        generator = torch.Generator().manual_seed(self.seed)
        flat = prior.flatten()
        fixed = torch.isinf(flat) & (flat < 0)
        free = torch.nonzero(~fixed).flatten()
        need = count - int(fixed.sum())
        if need <= 0 or need >= len(free):
            keep = torch.ones_like(flat, dtype=torch.bool)
            keep[fixed] = False
            if need >= len(free):
                keep[free] = False
            return keep.reshape(prior.shape)
        model = self.model if self.model is not None else model if model is not None else module
        cache: dict[tuple[int, ...], float] = {}

        def score(pruned: torch.Tensor) -> float:
            key = tuple(sorted(pruned.tolist()))
            if key not in cache:
                keep = torch.ones_like(flat, dtype=torch.bool)
                keep[fixed] = False
                keep[pruned] = False
                with contextlib.ExitStack() as stack:
                    for tensor_name, mask in expand(keep.reshape(prior.shape)).items():
                        stack.enter_context(temporary_mask(module, mask, tensor_name))
                    cache[key] = float(self.evaluate(model))
            return cache[key]

        order = free[flat[free].argsort()]
        population = [order[:need]]                                   # the cheap criterion's pick
        for _ in range(self.particles - 1):
            population.append(free[torch.randperm(len(free), generator=generator)[:need]])
        best, best_score = population[0], score(population[0])
        self.history = []
        for generation in range(self.iterations + 1):
            scores = torch.tensor([score(p) for p in population], dtype=torch.float64)
            top = int(scores.argmax())
            if scores[top] > best_score:
                best, best_score = population[top], float(scores[top])
            self.history.append(best_score)
            if generation == self.iterations:
                break
            weights = torch.softmax((scores - scores.max()) / self.temperature, dim=0)
            picks = torch.multinomial(weights, self.particles, replacement=True, generator=generator)
            population = [self._perturb(population[int(i)], free, generator) for i in picks]
        keep = torch.ones_like(flat, dtype=torch.bool)
        keep[fixed] = False
        keep[best] = False
        return keep.reshape(prior.shape)

    def _perturb(self, pruned: torch.Tensor, free: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        kept = free[~torch.isin(free, pruned)]
        swaps = min(self.swaps, len(pruned), len(kept))
        if swaps == 0:
            return pruned
        out_idx = torch.randperm(len(pruned), generator=generator)[:swaps]
        in_units = kept[torch.randperm(len(kept), generator=generator)[:swaps]]
        result = pruned.clone()
        result[out_idx] = in_units
        return result

    def __repr__(self) -> str:
        return (f"ParticleFilter(particles={self.particles}, iterations={self.iterations}, "
                f"swaps={self.swaps}, temperature={self.temperature}, seed={self.seed})")
