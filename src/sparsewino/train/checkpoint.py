"""Checkpoints written atomically (temp file + os.replace) and loaded without running code."""
from __future__ import annotations

import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..files import write_text_atomic  # re-exported: the old import path

__all__ = ["CheckpointError", "NotACheckpointError", "save_checkpoint", "load_checkpoint",
           "describe_foreign_file", "write_text_atomic", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "sparsewino-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, corrupt, unsafe to load or not a sparsewino checkpoint."""


class NotACheckpointError(CheckpointError):
    """A readable file of tensors and plain data, but not written by sparsewino (e.g. a state_dict)."""


def _first_line(exc: BaseException) -> str:
    """The first sentence of the first line of ``exc``'s message, cut at a word (at most 200
    characters): enough to say what torch found, without its advice for trusted files."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    sentence = re.sub(r"\x1b\[[0-9;]*m", "", lines[0]).split(". ")[0].rstrip(". ")
    if len(sentence) > 200:
        sentence = sentence[:200].rsplit(" ", 1)[0] + " ..."
    return sentence


def _forbidden_globals(exc: BaseException) -> list[str]:
    """The Python objects a ``weights_only`` load refused (``GLOBAL module.Name``), if named."""
    return sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(exc))))


def save_checkpoint(path: str | Path, content: dict[str, Any]) -> Path:
    """Write ``content`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically.

    The data goes to a temporary file in the same directory, is flushed to disk and then
    renamed over ``path`` with :func:`os.replace`: a crash leaves either the old checkpoint or
    the new one, never a half-written file (and a symbolic link at ``path`` is replaced, never
    written through).

    Returns:
        The checkpoint path.

    Raises:
        CheckpointError: the write failed (a full disk, an I/O error); the message says so and
            that the previous checkpoint, if any, is unchanged.

    Examples:
        >>> save_checkpoint("run/model.pt", {"model": model.state_dict()})  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **content}
    existed = path.is_file()
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False)
    try:
        with handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException as exc:
        Path(handle.name).unlink(missing_ok=True)
        if isinstance(exc, (OSError, RuntimeError)):     # ENOSPC; torch's "unexpected pos 704 vs 598"
            raise CheckpointError(_write_failure(path, exc, existed)) from exc
        raise
    return path


def _write_failure(path: Path, exc: BaseException, existed: bool) -> str:
    """Why writing ``path`` failed, and what is left on disk."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    cause, advice = _first_line(exc), "fix the cause and rerun"
    if getattr(exc, "errno", None) == 28 or (free is not None and free < 64 * 2 ** 20):
        cause = "the disk is full" + (f" ({free / 2 ** 20:.0f} MB free)" if free is not None else "") \
            + f" ({cause})"
        advice = "free some space and rerun"
    kept = (f"the previous checkpoint {path} is unchanged, so a rerun resumes from it"
            if existed else "nothing was written")
    return f"could not write checkpoint {path}: {cause}. {kept}; {advice}"


#: What a sparsewino checkpoint is, for error messages about other files.
EXPECTED = ("expected a sparsewino checkpoint (a .pt file written by sparsewino: a run "
            "directory's model.pt, or the --output of train/prune/convert)")

_SIGNATURES = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
               (b"GIF8", "a GIF image"), (b"%PDF", "a PDF document"),
               (b"\x1f\x8b", "a gzip archive (a dataset file?)"), (b"\x00\x00\x08", "an IDX data file"),
               (b"\x7fELF", "an executable"),
               # engine.artifact.container.MAGIC (a test checks they agree)
               (b"SWENGINE", "a sparsewino engine artifact (.swe): run it with `sparsewino eval` "
                             "or `sparsewino bench`, or engine.load(path); count and inspect "
                             "need the checkpoint it was exported from"))


def describe_foreign_file(path: Path) -> str | None:
    """What ``path`` is when it plainly is not a PyTorch file (``None`` when it may be one).

    PyTorch files start with a zip header (``torch.save``) or a pickle opcode (the legacy
    format); anything else (text, YAML, images, archives, an empty file) is named.
    """
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return None
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file that is not a PyTorch checkpoint"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if any(line.startswith("stages:") for line in text.splitlines()):
        return "a YAML recipe (run it with `sparsewino run FILE`)"
    kind = "a YAML/JSON file" if first.startswith(("{", "[", "---")) or ":" in first else "a text file"
    return f"{kind} (starting {first[:60]!r})"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Loading never executes code: only tensors and plain containers are accepted.

    Raises:
        CheckpointError: missing, a directory, another kind of file (text, YAML, image...: the
            message says which), truncated/corrupt, holding code objects, or not a sparsewino
            checkpoint; the message says which and what to do.
    """
    path = Path(path)
    if path.is_dir():
        hint = (f"; its model is {path / 'model.pt'}" if (path / "model.pt").is_file() else "")
        raise CheckpointError(f"{path} is a directory, not a checkpoint file{hint}; {EXPECTED}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    foreign = describe_foreign_file(path)
    if foreign is not None:
        raise CheckpointError(f"{path} is not a checkpoint: it is {foreign}; {EXPECTED}")
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _forbidden_globals(exc)
        what = f" ({', '.join(found)})" if found else ""
        raise CheckpointError(f"refusing to load {path}: it holds Python objects{what}, not only "
                              "tensors and plain data, and sparsewino never runs code from a "
                              "checkpoint. Re-save the model's state_dict (tensors only) with "
                              "sparsewino, from a copy you trust") from None
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
