"""Masks on their own: a small bit-packed file (no pickled objects), and loading pruned state dicts."""
from __future__ import annotations

import os
from typing import Mapping, Union

import numpy as np
import torch
from torch import nn

from .mask import apply_mask, get_grad_scale, get_mask, masked_tensors, refresh, set_grad_scale

__all__ = ["save_masks", "load_masks", "masks_state", "load_pruned_state_dict", "check_mask_values"]

FORMAT = "sparsewino-masks-v1"
PathLike = Union[str, os.PathLike]


def _qualified(module_name: str, tensor_name: str) -> str:
    return f"{module_name}.{tensor_name}" if module_name else tensor_name


def masks_state(model: nn.Module) -> dict[str, torch.Tensor | str]:
    """Every mask of ``model`` as a flat dict of tensors: bits packed 8 per byte.

    Keys: ``mask/<module>.<tensor>`` (uint8 packed bits), ``shape/<...>`` (int64 shape),
    ``grad_scale/<...>`` (gradient scales, when set) and ``format``.
    """
    state: dict[str, torch.Tensor | str] = {"format": FORMAT}
    for module_name, module, tensor_name in masked_tensors(model):
        key = _qualified(module_name, tensor_name)
        mask = get_mask(module, tensor_name)
        bits = np.packbits(mask.detach().cpu().flatten().numpy() != 0)
        state[f"mask/{key}"] = torch.from_numpy(bits)
        state[f"shape/{key}"] = torch.tensor(list(mask.shape), dtype=torch.int64)
        scale = get_grad_scale(module, tensor_name)
        if scale is not None:
            state[f"grad_scale/{key}"] = scale.detach().cpu().clone()
    return state


def save_masks(model: nn.Module, path: PathLike) -> PathLike:
    """Write every mask (and gradient scale) of ``model`` to ``path``.

    The file holds only tensors and a format string (``torch.save`` of a flat dict, read
    back with ``weights_only=True``); masks take one bit per entry.

    Args:
        model: a pruned model.
        path: output file.

    Returns:
        ``path``.

    Examples:
        >>> net = nn.Sequential(nn.Conv2d(2, 2, 3))
        >>> _ = sparsewino.prune.magnitude(net[0], 0.5)                     # doctest: +SKIP
        >>> save_masks(net, "masks.pt"); load_masks(fresh_net, "masks.pt")  # doctest: +SKIP
    """
    torch.save(masks_state(model), path)
    return path


def _unpack(bits: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    dims = [int(s) for s in shape.tolist()]
    count = int(np.prod(dims)) if dims else 1
    flat = np.unpackbits(bits.numpy().astype(np.uint8), count=count)
    return torch.from_numpy(flat.astype(bool)).reshape(dims)


def load_masks(model: nn.Module, source: PathLike | Mapping[str, torch.Tensor | str],
               strict: bool = True) -> nn.Module:
    """Apply masks saved by :func:`save_masks` to ``model`` (replacing any mask it has).

    Args:
        model: a model with the same layer names (its weights are kept; only masks and
            gradient scales are set).
        source: a file path or a dict from :func:`masks_state`.
        strict: error when a saved mask has no matching tensor, or a masked tensor of
            ``model`` has no saved mask.

    Returns:
        ``model``.

    Examples:
        >>> net = sparsewino.prune.magnitude(nn.Conv2d(2, 2, 3), 0.5)       # doctest: +SKIP
        >>> save_masks(net, "masks.pt")                                    # doctest: +SKIP
        >>> load_masks(nn.Conv2d(2, 2, 3), "masks.pt").weight_mask.sum()    # doctest: +SKIP
        tensor(18.)
    """
    state = torch.load(source, weights_only=True, map_location="cpu") if not isinstance(
        source, Mapping) else source
    if state.get("format") != FORMAT:
        raise ValueError(f"not a sparsewino mask file (format {state.get('format')!r}, "
                         f"expected {FORMAT!r})")
    keys = [k[len("mask/"):] for k in state if k.startswith("mask/")]
    found = set()
    for key in keys:
        module_name, _, tensor_name = key.rpartition(".")
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            if strict:
                raise ValueError(f"saved mask {key!r} names no module of the model") from None
            continue
        mask = _unpack(state[f"mask/{key}"], state[f"shape/{key}"])
        device = next((t.device for t in module.parameters()), torch.device("cpu"))
        apply_mask(module, mask.to(device), tensor_name, combine=False)
        set_grad_scale(module, state.get(f"grad_scale/{key}"), tensor_name)
        found.add(key)
    missing = [_qualified(m, t) for m, _, t in masked_tensors(model) if _qualified(m, t) not in found]
    if strict and missing:
        raise ValueError(f"the model has masks the file lacks: {missing} (strict=False ignores)")
    return model


def check_mask_values(state_dict: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Refuse pruning masks (``*_mask`` entries) holding anything but 0 and 1.

    A mask keeps (1) or prunes (0) each entry; 0.5, 7, -1 or NaN would silently scale or
    poison the weights.

    Raises:
        ValueError: naming the mask and the offending values.
    """
    for key, mask in state_dict.items():
        if not key.endswith("_mask") or not isinstance(mask, torch.Tensor) or mask.dtype == torch.bool:
            continue
        bad = ~((mask == 0) | (mask == 1))
        if bool(bad.any()):
            values = sorted({str(v) for v in mask[bad].flatten()[:64].tolist()})[:4]
            raise ValueError(f"{source}: mask {key!r} holds {int(bad.sum())} value(s) other than 0 "
                             f"and 1 (e.g. {', '.join(values)}); a mask keeps (1) or prunes (0) "
                             "each weight. The file is damaged or was not written by sparsewino.")


def load_pruned_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                           strict: bool = True) -> nn.Module:
    """Load a pruned model's ``state_dict`` into a model that may not be pruned yet.

    ``torch.nn.utils.prune`` state dicts hold ``<name>_orig``/``<name>_mask`` (and here
    ``<name>_grad_scale``) where a fresh model has ``<name>``; this reparametrises the
    matching tensors first, then calls ``model.load_state_dict``.

    Returns:
        ``model``.

    Raises:
        ValueError: a mask holds values other than 0 and 1 (:func:`check_mask_values`).

    Examples:
        >>> fresh = load_pruned_state_dict(make_model(), torch.load("ckpt.pt"))  # doctest: +SKIP
    """
    check_mask_values(state_dict)
    for key in state_dict:
        if not key.endswith("_mask"):
            continue
        base = key[: -len("_mask")]
        if base + "_orig" not in state_dict:
            continue
        module_name, _, tensor_name = base.rpartition(".")
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            raise ValueError(f"the state dict prunes {base!r}, but the model has no module "
                             f"{module_name!r}") from None
        if get_mask(module, tensor_name) is None:
            apply_mask(module, torch.ones_like(getattr(module, tensor_name)), tensor_name)
        scale = state_dict.get(base + "_grad_scale")
        if scale is not None:
            set_grad_scale(module, torch.ones_like(scale), tensor_name)
    model.load_state_dict(state_dict, strict=strict)
    for _, module, tensor_name in masked_tensors(model):
        refresh(module, tensor_name)          # module.<name> from the loaded orig and mask
    return model
