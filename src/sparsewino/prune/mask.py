"""The one mask mechanism: torch.nn.utils.prune-compatible masks with optional gradient scaling.

A pruned tensor ``name`` of a module is reparametrised exactly as ``torch.nn.utils.prune``
does it: the trainable parameter becomes ``<name>_orig``, a buffer ``<name>_mask`` holds the
mask and a forward pre-hook (a :class:`Mask`, a ``BasePruningMethod``) recomputes
``module.<name> = <name>_orig * <name>_mask`` before every forward. ``prune.is_pruned`` and
``prune.remove`` keep working, and so does a mask set earlier by torch's own methods.

Gradient scaling lives in the same hook: when the buffer ``<name>_grad_scale`` exists, the
gradient reaching ``<name>_orig`` is multiplied by it (an identity in the forward pass), so
any trainer and any optimizer see the scaled gradient without cooperating. Because the scale
is a buffer and the hook is a plain object, both survive ``state_dict``, ``deepcopy``,
pickling and DDP (the scaling happens inside autograd, before gradients are all-reduced).

Pruned entries stay exactly zero whatever the optimizer does to ``<name>_orig`` (momentum,
weight decay, Adam), because the effective tensor is always ``orig * mask``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

__all__ = [
    "Mask",
    "apply_mask",
    "get_mask",
    "get_grad_scale",
    "set_grad_scale",
    "effective_weight",
    "masked_tensors",
    "pruning_info",
    "pruning_records",
    "restore_pruning_records",
    "temporary_mask",
    "finalize",
    "refresh",
]


class _ScaleGradient(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``scale``."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scale)
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (scale,) = ctx.saved_tensors
        return grad * scale.to(grad.dtype), None


class Mask(torch_prune.BasePruningMethod):
    """Forward pre-hook of a tensor pruned by sparsewino (a ``torch.nn.utils.prune`` method).

    Computes ``orig * mask`` (with the gradient of ``orig`` multiplied by
    ``<name>_grad_scale`` when that buffer exists). ``info`` records what the last pruning
    call asked for and reached (method, amount, domain, sparsity) for reports.
    """

    PRUNING_TYPE = "unstructured"

    def __init__(self, mask: torch.Tensor | None = None, info: dict[str, Any] | None = None) -> None:
        self._new_mask = mask
        self.info: dict[str, Any] = dict(info or {})

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        mask = self._new_mask
        self._new_mask = None                  # do not keep a second copy of the mask alive
        if mask is None:
            return default_mask
        return mask.to(dtype=default_mask.dtype, device=default_mask.device) * default_mask

    def apply_mask(self, module: nn.Module) -> torch.Tensor:
        name = self._tensor_name
        orig = getattr(module, name + "_orig")
        mask = getattr(module, name + "_mask")
        scale = getattr(module, name + "_grad_scale", None)
        if scale is not None and torch.is_grad_enabled() and orig.requires_grad:
            orig = _ScaleGradient.apply(orig, scale)
        return mask.to(dtype=orig.dtype) * orig

    def remove(self, module: nn.Module) -> None:
        super().remove(module)
        module._buffers.pop(self._tensor_name + "_grad_scale", None)


def _hook_key(module: nn.Module, name: str) -> tuple[int | None, Any]:
    found = [(k, h) for k, h in module._forward_pre_hooks.items()
             if isinstance(h, torch_prune.BasePruningMethod) and h._tensor_name == name]
    if len(found) > 1:
        raise RuntimeError(f"{type(module).__name__} has {len(found)} pruning hooks on {name!r}; "
                           "expected at most one")
    return found[0] if found else (None, None)


def _is_masked(module: nn.Module, name: str) -> bool:
    return _hook_key(module, name)[1] is not None


def _check_tensor(module: nn.Module, name: str) -> torch.Tensor:
    tensor = getattr(module, name + "_orig", None) if _is_masked(module, name) else None
    if tensor is None:
        tensor = getattr(module, name, None)
        if not isinstance(tensor, nn.Parameter):
            hint = getattr(module, "pruning_hint", None)        # a layer saying how to prune it
            raise ValueError(f"{type(module).__name__} has no parameter {name!r} to prune "
                             f"(parameters: {[n for n, _ in module.named_parameters(recurse=False)]})"
                             + (f": {hint}" if hint else ""))
    return tensor


class _DetachedPrunedState:
    """Instance-level ``__getstate__`` so ``copy.deepcopy`` works on a pruned module.

    ``torch.nn.utils.prune`` leaves ``module.<name>`` as a non-leaf tensor, which
    ``deepcopy`` refuses; the copy gets a detached value (recomputed at its next forward).
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self) -> dict[str, Any]:
        state = type(self.module).__getstate__(self.module)
        for hook in self.module._forward_pre_hooks.values():
            if isinstance(hook, torch_prune.BasePruningMethod):
                value = state.get(hook._tensor_name)
                if isinstance(value, torch.Tensor) and not value.is_leaf:
                    state[hook._tensor_name] = value.detach()
        return state


def _support_copy(module: nn.Module) -> None:
    if not isinstance(module.__dict__.get("__getstate__"), _DetachedPrunedState):
        object.__setattr__(module, "__getstate__", _DetachedPrunedState(module))


def refresh(module: nn.Module, name: str = "weight") -> None:
    """Recompute ``module.<name>`` from ``<name>_orig`` and the mask now (it is otherwise
    recomputed at the next forward), e.g. after loading a state dict."""
    hook = _hook_key(module, name)[1]
    if hook is None:
        raise ValueError(f"{type(module).__name__}.{name} is not pruned")
    setattr(module, name, hook.apply_mask(module))


def apply_mask(module: nn.Module, mask: torch.Tensor, name: str = "weight", *,
               combine: bool = True, info: dict[str, Any] | None = None) -> nn.Module:
    """Mask ``module.<name>`` (the single entry point every sparsewino method uses).

    Args:
        module: the module owning the tensor (any ``nn.Module``; Winograd-domain ``weight``
            included).
        mask: 0/1 tensor of the tensor's shape (bool or float); 0 prunes.
        name: parameter name.
        combine: ``True`` keeps entries pruned earlier pruned (new mask = old * mask);
            ``False`` replaces the mask (pruned entries may come back).
        info: what the calling method wants recorded (see :func:`pruning_info`).

    Returns:
        ``module``.

    Examples:
        >>> conv = nn.Conv2d(2, 2, 3)
        >>> mask = torch.ones_like(conv.weight); mask[0] = 0
        >>> apply_mask(conv, mask).weight[0].abs().sum().item()
        0.0
        >>> torch_prune.is_pruned(conv)
        True
    """
    tensor = _check_tensor(module, name)
    if tuple(mask.shape) != tuple(tensor.shape):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match "
                         f"{type(module).__name__}.{name} shape {tuple(tensor.shape)}")
    key, hook = _hook_key(module, name)
    if hook is None:
        hook = Mask.apply(module, name, mask=mask.detach())
    else:
        if not isinstance(hook, Mask):      # a mask set by torch's own methods: take it over
            replacement = Mask()
            replacement._tensor_name = name
            module._forward_pre_hooks[key] = replacement
            hook = replacement
        buffer = getattr(module, name + "_mask")
        new = mask.detach().to(dtype=buffer.dtype, device=buffer.device)
        with torch.no_grad():
            buffer.copy_(buffer * new if combine else new)   # in place: DDP keeps its reference
        refresh(module, name)
    if info is not None:
        hook.info = dict(info)
    _support_copy(module)
    return module


def get_mask(module: nn.Module, name: str = "weight") -> torch.Tensor | None:
    """The mask buffer of ``module.<name>``, or ``None`` when the tensor is not pruned."""
    return getattr(module, name + "_mask") if _is_masked(module, name) else None


def get_grad_scale(module: nn.Module, name: str = "weight") -> torch.Tensor | None:
    """The gradient scale of ``module.<name>``, or ``None`` when there is none."""
    return module._buffers.get(name + "_grad_scale")


def set_grad_scale(module: nn.Module, scale: torch.Tensor | None, name: str = "weight") -> nn.Module:
    """Multiply the gradient of ``module.<name>`` by ``scale`` during backward (``None`` clears).

    The tensor is masked first (with an all-ones mask) if it is not pruned yet, since the
    scaling is part of the mask's hook. The scale is stored as the buffer
    ``<name>_grad_scale`` (broadcastable to the tensor's shape) and saved with the model.

    Args:
        module: the module owning the tensor.
        scale: tensor broadcastable to the parameter's shape, or ``None`` to remove scaling.
        name: parameter name.

    Returns:
        ``module``.

    Examples:
        >>> conv = nn.Conv2d(1, 1, 3)
        >>> _ = set_grad_scale(conv, torch.full((1, 1, 3, 3), 0.5))
        >>> conv(torch.ones(1, 1, 3, 3)).sum().backward()
        >>> conv.weight_orig.grad.unique().tolist()
        [0.5]
    """
    tensor = _check_tensor(module, name)
    if scale is None:
        module._buffers.pop(name + "_grad_scale", None)
        if _is_masked(module, name):
            refresh(module, name)
        return module
    try:
        torch.broadcast_shapes(tuple(scale.shape), tuple(tensor.shape))
    except RuntimeError:
        raise ValueError(f"gradient scale of shape {tuple(scale.shape)} does not broadcast to "
                         f"{type(module).__name__}.{name} shape {tuple(tensor.shape)}") from None
    if len(scale.shape) > tensor.dim():
        raise ValueError(f"gradient scale has more dimensions ({scale.dim()}) than "
                         f"{name} ({tensor.dim()})")
    if not _is_masked(module, name):
        apply_mask(module, torch.ones_like(tensor), name)
    scale = scale.detach().to(dtype=tensor.dtype, device=tensor.device).clone()
    module._buffers.pop(name + "_grad_scale", None)
    module.register_buffer(name + "_grad_scale", scale)
    refresh(module, name)
    return module


def effective_weight(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """``module.<name>`` as the next forward will see it, with autograd (use in regularisers).

    Unlike reading ``module.<name>`` (the value of the last forward), this recomputes
    ``orig * mask`` now; for an unpruned tensor it is the parameter itself.

    Examples:
        >>> conv = apply_mask(nn.Conv2d(1, 1, 1), torch.zeros(1, 1, 1, 1))
        >>> effective_weight(conv).abs().sum().backward()      # gradients reach weight_orig
    """
    hook = _hook_key(module, name)[1]
    return hook.apply_mask(module) if hook is not None else _check_tensor(module, name)


def masked_tensors(model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    """Yield ``(module_name, module, tensor_name)`` for every pruned tensor in ``model``."""
    for module_name, module in model.named_modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, torch_prune.BasePruningMethod):
                yield module_name, module, hook._tensor_name


def pruning_info(module: nn.Module, name: str = "weight") -> dict[str, Any]:
    """What the last sparsewino pruning of ``module.<name>`` recorded (empty if none).

    Keys set by the methods: ``method``, ``amount`` (the target), ``domain`` (where the
    sparsity is counted: ``"spatial"`` or ``"winograd"``) and ``sparsity`` (what it reached).
    """
    hook = _hook_key(module, name)[1]
    return dict(getattr(hook, "info", {}) or {})


_PLAIN = (str, int, float, bool, type(None))


def pruning_records(model: nn.Module) -> dict[str, dict[str, Any]]:
    """``{"<module>.<tensor>": pruning_info}`` of every pruned tensor that has a record, plain
    values only (what a checkpoint keeps so that a loaded model still says how it was pruned)."""
    records = {}
    for module_name, module, tensor_name in masked_tensors(model):
        info = {k: v for k, v in pruning_info(module, tensor_name).items() if isinstance(v, _PLAIN)}
        if info:
            records[f"{module_name}.{tensor_name}" if module_name else tensor_name] = info
    return records


def restore_pruning_records(model: nn.Module, records: Any) -> nn.Module:
    """Put :func:`pruning_records` back on the pruning hooks of a loaded ``model`` (entries for
    tensors that are not pruned in it, or that are not plain mappings, are ignored)."""
    if not isinstance(records, dict):
        return model
    for module_name, module, tensor_name in masked_tensors(model):
        key = f"{module_name}.{tensor_name}" if module_name else tensor_name
        info = records.get(key)
        if isinstance(info, dict):
            hook = _hook_key(module, tensor_name)[1]
            hook.info = {k: v for k, v in info.items() if isinstance(k, str) and isinstance(v, _PLAIN)}
    return model


@contextlib.contextmanager
def temporary_mask(module: nn.Module, mask: torch.Tensor, name: str = "weight") -> Iterator[nn.Module]:
    """Evaluate ``module`` with ``mask`` applied on top of its own mask, then restore it.

    Used by searches (the particle filter) that try many masks without training.

    Args:
        module: the module owning the tensor (pruned or not).
        mask: 0/1 tensor of the tensor's shape, multiplied into the current mask.
        name: parameter name.

    Returns:
        A context manager yielding ``module``.

    Examples:
        >>> conv = nn.Conv2d(1, 1, 3)
        >>> with temporary_mask(conv, torch.zeros(1, 1, 3, 3)):
        ...     conv.weight.abs().sum().item()
        0.0
    """
    tensor = _check_tensor(module, name)
    if tuple(mask.shape) != tuple(tensor.shape):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match {name} shape "
                         f"{tuple(tensor.shape)}")
    if _is_masked(module, name):
        buffer = getattr(module, name + "_mask")
        saved = buffer.detach().clone()
        with torch.no_grad():
            buffer.mul_(mask.to(buffer.dtype))
        refresh(module, name)
        try:
            yield module
        finally:
            with torch.no_grad():
                buffer.copy_(saved)
            refresh(module, name)
    else:
        saved = tensor.detach().clone()
        with torch.no_grad():
            tensor.mul_(mask.to(tensor.dtype))
        try:
            yield module
        finally:
            with torch.no_grad():
                tensor.copy_(saved)


def finalize(model: nn.Module) -> nn.Module:
    """Bake every mask of ``model`` into plain parameters (``prune.remove`` on each), in place.

    Works for masks set by sparsewino and by ``torch.nn.utils.prune``; gradient scales are
    dropped. The zeros stay, but nothing keeps them zero in later training.

    Args:
        model: a module or a whole model.

    Returns:
        ``model``.

    Examples:
        >>> conv = apply_mask(nn.Conv2d(1, 1, 3), torch.zeros(1, 1, 3, 3))
        >>> finalize(conv).weight.abs().sum().item(), torch_prune.is_pruned(conv)
        (0.0, False)
    """
    for _, module, name in list(masked_tensors(model)):
        torch_prune.remove(module, name)
        if not torch_prune.is_pruned(module):
            module.__dict__.pop("__getstate__", None)
    return model
