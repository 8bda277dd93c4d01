"""Architecture records: rebuild any pipeline model (conversions, Winograd-ReLU, masks) from plain data.

A checkpoint never pickles a module. It stores the model's registry name and options plus the
structural transforms applied so far (``convert``, ``winograd_relu``); loading rebuilds the
model by replaying them on a fresh model, then loads the (pruned) state dict, so masks and
gradient scales come back too.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models import create_model
from ..nn import convert
from ..prune import load_pruned_state_dict, pruning_records, restore_pruning_records, winograd_relu
from ..train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..train.loop import check_masks, load_model_state

__all__ = ["new_architecture", "apply_transform", "build_model", "check_architecture", "save_model",
           "load_model", "TRANSFORMS"]

TRANSFORMS = ("convert", "winograd_relu")


def new_architecture(name: str, args: dict[str, Any], in_channels: int, num_classes: int) -> dict[str, Any]:
    """A record of a freshly built registry model (no transform yet)."""
    return {"model": name, "args": copy.deepcopy(dict(args)), "in_channels": in_channels,
            "num_classes": num_classes, "transforms": []}


def apply_transform(model: nn.Module, architecture: dict[str, Any], op: str, **params: Any) -> Any:
    """Apply a structural transform to ``model`` and append it to ``architecture``.

    Args:
        op: ``"convert"`` (params of :func:`sparsewino.nn.convert`: tile, domain, include,
            exclude, decompose) or ``"winograd_relu"`` (params of
            :func:`sparsewino.prune.winograd_relu`).

    Returns:
        The transform's report.
    """
    if op == "convert":
        _, report = convert(model, **params)
    elif op == "winograd_relu":
        params.setdefault("traced", True)             # recorded explicitly: see build_model
        _, report = winograd_relu(model, **params)
    else:
        raise ValueError(f"unknown transform {op!r}; known: {TRANSFORMS}")
    architecture["transforms"].append({"op": op, **params})
    return report


def check_architecture(architecture: Any) -> None:
    """Raise :class:`CheckpointError` saying what is wrong with a malformed architecture record."""
    def bad(problem: str) -> CheckpointError:
        return CheckpointError(f"invalid architecture record: {problem}; the checkpoint was not "
                               "written by the sparsewino pipeline (or by an incompatible version)")

    if not isinstance(architecture, dict):
        raise bad(f"a mapping expected, got {type(architecture).__name__}")
    for key, kind in (("model", str), ("in_channels", int), ("num_classes", int)):
        if not isinstance(architecture.get(key), kind):
            raise bad(f"{key!r} must be a {kind.__name__}, got {architecture.get(key)!r}")
    if not isinstance(architecture.get("args", {}), dict):
        raise bad(f"'args' must be a mapping, got {architecture['args']!r}")
    transforms = architecture.get("transforms", [])
    if not isinstance(transforms, list):
        raise bad(f"'transforms' must be a list, got {transforms!r}")
    for index, transform in enumerate(transforms):
        if not isinstance(transform, dict) or transform.get("op") not in TRANSFORMS:
            raise bad(f"transforms[{index}] must be a mapping with 'op' one of {TRANSFORMS}, "
                      f"got {transform!r}")


def build_model(architecture: dict[str, Any]) -> nn.Module:
    """A fresh model with the recorded structure (weights freshly initialised, no masks).

    Raises:
        CheckpointError: the record is malformed, or holds a value the model builder or a
            transform refuses (``ValueError``); other errors while building (defects) are not
            hidden behind it.
    """
    check_architecture(architecture)
    try:
        model = create_model(architecture["model"], in_channels=architecture["in_channels"],
                             num_classes=architecture["num_classes"],
                             **architecture.get("args", {}))
    except ValueError as exc:            # a value the builder refuses (a bug would be another type)
        raise CheckpointError(f"invalid architecture record: model {architecture['model']!r} "
                              f"with args {architecture.get('args', {})!r} cannot be built: "
                              f"{exc}") from None
    for index, transform in enumerate(architecture.get("transforms", [])):
        params = {k: v for k, v in transform.items() if k != "op"}
        # Records written before DWM (no "decompose") converted only stride-1 convolutions
        # with plain F(m, r): rebuild them as they were, so their weights fit.
        params.setdefault("decompose", "none")
        if transform["op"] == "winograd_relu":
            # records written before tracing existed rewrote only what nn.Sequential chains show
            params.setdefault("traced", False)
        try:
            apply_transform(model, {"transforms": []}, transform["op"], **params)
        except ValueError as exc:
            raise CheckpointError(f"invalid architecture record: transforms[{index}] "
                                  f"{transform!r} cannot be applied: {exc}") from None
    return model


def save_model(path: str | Path, model: nn.Module, architecture: dict[str, Any], **extra: Any) -> Path:
    """Write a model checkpoint (architecture record + state dict + ``extra`` plain data)."""
    return save_checkpoint(path, {"kind": "model", "architecture": architecture,
                                  "model": model.state_dict(), "pruning": pruning_records(model),
                                  **extra})


def load_model(path: str | Path, map_location: str | torch.device = "cpu"
               ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a pipeline checkpoint (model or training checkpoint).

    Args:
        path: a model checkpoint, or a run directory (its ``model.pt``: the latest model).

    Returns:
        ``(model, checkpoint)``; the model is in eval mode.

    Raises:
        CheckpointError: corrupt file, no architecture record, or weights that do not fit.

    Examples:
        >>> model, checkpoint = load_model("runs/demo/model.pt")        # doctest: +SKIP
        >>> model, checkpoint = load_model("runs/demo")          # the same  # doctest: +SKIP
    """
    if Path(path).is_dir() and (Path(path) / "model.pt").is_file():
        path = Path(path) / "model.pt"
    checkpoint = load_checkpoint(path, map_location)
    architecture = checkpoint.get("architecture")
    if not isinstance(architecture, dict):
        raise CheckpointError(f"{path} has no architecture record; it was not written by the "
                              "sparsewino pipeline (load its 'model' state dict yourself)")
    if "model" not in checkpoint:
        raise CheckpointError(f"{path} holds no model weights (no 'model' entry)")
    model = build_model(architecture)
    load_into(model, checkpoint["model"], f"checkpoint {path}")
    restore_pruning_records(model, checkpoint.get("pruning"))     # how each tensor was pruned
    return model.to(map_location).eval(), checkpoint


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load a (possibly pruned) state dict into a model that may not carry the masks yet."""
    check_masks(state, source)
    try:
        load_pruned_state_dict(model, state, strict=False)
    except (RuntimeError, ValueError) as exc:          # torch's size mismatch; a mask for a missing tensor
        raise CheckpointError(f"{source} does not fit the model: {str(exc).splitlines()[0][:300]}") from None
    load_model_state(model, state, source)       # strict check with a clear message
    return model
