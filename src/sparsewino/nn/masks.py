"""Pruning masks across a domain switch: spatial masks become Winograd-domain masks on Q, and back where exact.

Winograd position k of a kernel depends on the spatial taps ``{j : (G ⊗ G)[k, j] != 0}`` (its
support). A spatial mask that zeroes a position's whole support makes Q[k] exactly zero, so on
the Winograd side that position is masked. Back in the spatial domain, a masked position keeps
its zero only if every tap of its support is held at zero; that mask is carried for the kernels
whose spatial weights really are zero there (exact), and dropped for the others, whose
Winograd-domain zeros the spatial domain cannot express.

Masks stay ``torch.nn.utils.prune``-compatible (``weight_orig`` + ``weight_mask`` + pre-hook);
the pruning hook of the old layer (sparsewino's ``Mask`` with its recorded info, or torch's
own) is kept. This module depends only on ``winograd/``, like the rest of ``nn/``.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from ..winograd.algorithm import WinogradAlgorithm
from ..winograd.decompose import Decomposition
from ..winograd.transform import filter_matrix

__all__ = ["support_pattern", "winograd_mask", "spatial_mask", "exact_spatial_weight", "pruning_hook",
           "carry_mask"]


def support_pattern(algorithms: Sequence[WinogradAlgorithm], device: torch.device | None = None,
                    decomposition: Decomposition | None = None) -> torch.Tensor:
    """Boolean ``(P, R)``: which spatial taps (columns) each Winograd position (rows) depends on
    (``(S * P, R)`` over all pieces of a DWM ``decomposition``)."""
    return filter_matrix(algorithms, decomposition, torch.float64, device) != 0


def _winograd_shape(algorithms: Sequence[WinogradAlgorithm],
                    decomposition: Decomposition | None) -> tuple[int, ...]:
    sizes = tuple(a.n for a in algorithms)
    return sizes if decomposition is None else (decomposition.pieces, *sizes)


def _kernel_shape(algorithms: Sequence[WinogradAlgorithm],
                  decomposition: Decomposition | None) -> tuple[int, ...]:
    return tuple(a.r for a in algorithms) if decomposition is None else decomposition.kernel_size


def winograd_mask(mask: torch.Tensor, algorithms: Sequence[WinogradAlgorithm],
                  decomposition: Decomposition | None = None) -> torch.Tensor:
    """The Winograd-domain mask ``(K, C, *n)`` a spatial mask ``(K, C, *r)`` implies
    (``(K, C, S, *n)`` from ``(K, C, *k)`` for a DWM ``decomposition``).

    A position is masked when the spatial mask zeroes every tap of its support (Q[k] is then
    exactly zero whatever the other weights are).

    Examples:
        >>> from sparsewino.winograd import algorithm
        >>> mask = torch.ones(1, 1, 3, 3); mask[..., 0, :] = 0              # first kernel row pruned
        >>> winograd_mask(mask, [algorithm(2, 3)] * 2)[0, 0]
        tensor([[0., 0., 0., 0.],
                [1., 1., 1., 1.],
                [1., 1., 1., 1.],
                [1., 1., 1., 1.]])
    """
    support = support_pattern(algorithms, mask.device, decomposition).to(torch.float64)
    k, c = mask.shape[:2]
    kept = (mask.reshape(k * c, -1) != 0).to(torch.float64) @ support.T
    return (kept > 0).to(mask.dtype).reshape(k, c, *_winograd_shape(algorithms, decomposition))


def spatial_mask(mask: torch.Tensor, algorithms: Sequence[WinogradAlgorithm],
                 decomposition: Decomposition | None = None) -> torch.Tensor:
    """The spatial mask ``(K, C, *r)`` that keeps a Winograd-domain mask's zeros: every tap of a
    masked position's support is masked (the taps no masked position depends on stay free).
    With a DWM ``decomposition`` the mask ``(K, C, S, *n)`` gives one ``(K, C, *k)``: a tap is
    masked when a masked position of the piece that holds it depends on it."""
    support = support_pattern(algorithms, mask.device, decomposition).to(torch.float64)
    k, c = mask.shape[:2]
    touched = (mask.reshape(k * c, -1) == 0).to(torch.float64) @ support
    return (touched == 0).to(mask.dtype).reshape(k, c, *_kernel_shape(algorithms, decomposition))


def exact_spatial_weight(q: torch.Tensor, algorithms: Sequence[WinogradAlgorithm],
                         decomposition: Decomposition | None = None
                         ) -> tuple[torch.Tensor, float]:
    """Spatial weights g with (G ⊗ G) g = vec(Q) by least squares, with exact zeros where exact.

    G ⊗ G has full column rank (so has the DWM map of a ``decomposition``: every tap lies in
    exactly one piece), so g is unique when Q is in its range; computed in floating
    point, taps that are zero come out as rounding noise. For each kernel, the taps within
    rounding noise of zero are set to exactly zero and the rest solved again; the result is
    kept when it reproduces Q as well as the plain least-squares solution (up to rounding),
    else the plain solution is. So a spatial → Winograd → spatial round trip keeps the zeros.

    Returns:
        ``(g, worst relative residual)`` with g in float64, shape ``(K, C, *r)``.
    """
    s = filter_matrix(algorithms, decomposition, torch.float64, q.device)      # (P, R)
    k, c = q.shape[:2]
    flat = q.detach().double().reshape(k * c, -1)                              # (KC, P)
    # QR-based least squares, not pinv: the SVD behind pinv returned non-orthogonal factors
    # (an error of 0.4 on a well-conditioned DWM map) on one thread with this torch build.
    g = torch.linalg.lstsq(s, flat.T).solution.T                                 # (KC, R)
    error = (g @ s.T - flat).abs().amax(dim=1)
    eps = torch.finfo(q.dtype).eps
    scale = g.abs().amax(dim=1, keepdim=True)
    gram = s.T @ s
    pending = torch.ones(len(g), dtype=torch.bool, device=g.device)
    for level in (1e3, 30.0, 1.0):          # from generous to tight: small real weights stay
        noise = g.abs() <= level * eps * scale
        rows = (pending & noise.any(dim=1) & ~noise.all(dim=1)).nonzero().squeeze(1)
        if not len(rows):
            continue
        keep = (~noise[rows]).to(torch.float64)                                # (T, R)
        system = keep[:, :, None] * gram * keep[:, None, :] + torch.diag_embed(1 - keep)
        solved = torch.linalg.solve(system, keep * (flat[rows] @ s)) * keep    # exact zeros
        solved_error = (solved @ s.T - flat[rows]).abs().amax(dim=1)
        exact = solved_error <= 2 * error[rows] + 4 * eps * flat[rows].abs().amax(dim=1)
        g[rows[exact]] = solved[exact]
        pending[rows[exact]] = False
    residual = (g @ s.T - flat).norm(dim=1) / flat.norm(dim=1).clamp_min(1e-300)
    worst = float(residual.max()) if residual.numel() else 0.0
    return g.reshape(k, c, *_kernel_shape(algorithms, decomposition)), worst


def pruning_hook(module: nn.Module, name: str = "weight") -> torch_prune.BasePruningMethod | None:
    """The ``torch.nn.utils.prune`` hook of ``module.<name>`` (sparsewino's or torch's), if any."""
    return next((h for h in module._forward_pre_hooks.values()
                 if isinstance(h, torch_prune.BasePruningMethod) and h._tensor_name == name), None)


def carry_mask(old: nn.Module, new: nn.Module, mask: torch.Tensor, name: str = "weight",
               domain: str | None = None, old_name: str | None = None) -> None:
    """Mask ``new.<name>`` with ``mask``, keeping the kind of pruning hook ``old.<name>`` had
    (``old.<old_name>`` when given: e.g. a low-rank layer's ``v``).

    A sparsewino ``Mask`` keeps its recorded info (method, amount...), with ``domain`` and
    ``sparsity`` updated to the new mask when ``domain`` is given; a gradient scale is not carried (it is specific to a
    domain). ``new.<name>`` is left detached, so the layer can be deep-copied right away.
    """
    hook = pruning_hook(old, old_name or name)
    torch_prune.custom_from_mask(new, name, mask.detach().clone())
    if hook is not None and not isinstance(hook, torch_prune.CustomFromMask):
        key = next(k for k, h in new._forward_pre_hooks.items()
                   if isinstance(h, torch_prune.BasePruningMethod) and h._tensor_name == name)
        replacement = copy.copy(hook)
        replacement._tensor_name = name
        if isinstance(getattr(hook, "info", None), dict):
            replacement.info = dict(hook.info)
            if domain is not None and hook.info:       # the mask now counts in another domain
                replacement.info.update(domain=domain, sparsity=float((mask == 0).double().mean()))
        new._forward_pre_hooks[key] = replacement
    setattr(new, name, getattr(new, name).detach())
