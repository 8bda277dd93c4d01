"""Checkpoints written atomically (temp file + os.replace) and loaded without running code."""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError

__all__ = ["CheckpointError", "NotACheckpointError", "save_checkpoint", "load_checkpoint",
           "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "sparsewino-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, corrupt, unsafe to load or not a sparsewino checkpoint."""


class NotACheckpointError(CheckpointError):
    """A readable file of tensors and plain data, but not written by sparsewino (e.g. a state_dict)."""


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def save_checkpoint(path: str | Path, content: dict[str, Any]) -> Path:
    """Write ``content`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically.

    The data goes to a temporary file in the same directory, is flushed to disk and then
    renamed over ``path`` with :func:`os.replace`: a crash leaves either the old checkpoint or
    the new one, never a half-written file.

    Returns:
        The checkpoint path.

    Examples:
        >>> save_checkpoint("run/model.pt", {"model": model.state_dict()})  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **content}
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False)
    try:
        with handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Loading never executes code: only tensors and plain containers are accepted.

    Raises:
        CheckpointError: missing, truncated/corrupt, holding code objects, or not a sparsewino
            checkpoint; the message says which and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refusing to load {path}: it holds objects other than tensors and "
                              f"plain data ({_first_line(exc)}); only load checkpoints you trust, "
                              "and re-save them with sparsewino") from None
    except Exception as exc:  # torch raises many types for damaged files (RuntimeError, KeyError...)
        raise CheckpointError(f"cannot read checkpoint {path}: {_first_line(exc)}. "
                              "The file is truncated or corrupt; use an earlier checkpoint or "
                              "re-run the stage.") from None
    if not isinstance(content, dict) or content.get("format") != CHECKPOINT_FORMAT:
        raise NotACheckpointError(f"{path} is not a sparsewino checkpoint (no '{CHECKPOINT_FORMAT}' "
                              "marker); for a plain state_dict use torch.load(weights_only=True)")
    if content.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} was written by a newer sparsewino (format version "
                              f"{content['version']}); upgrade sparsewino")
    return content
