"""Run directories the runner may delete: only its own, recognised by a marker file.

``sparsewino run --fresh`` must never wipe a directory it did not create (a thesis, a home
folder passed by mistake as ``--run-dir``). The runner writes :data:`MARKER` into every run
directory it creates; :func:`clear_run_dir` refuses a directory without it and even then
deletes only the entries a run writes, keeping anything else found there.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Iterator

from ..errors import UserError

__all__ = ["MARKER", "LOCK", "RUN_ENTRIES", "RunDirectoryError", "create_run_dir", "clear_run_dir",
           "is_run_dir", "check_takeover", "locked_run_dir"]

logger = logging.getLogger("sparsewino")

#: Written by :func:`create_run_dir`; its presence says "this directory is a sparsewino run".
MARKER = ".sparsewino-run"
#: Held (``flock``) by the one process running in the directory; the OS releases it on any exit.
LOCK = ".sparsewino-lock"
#: What a run writes in its directory (see :mod:`sparsewino.recipes.runner`).
RUN_ENTRIES = ("recipe.yaml", "metrics.jsonl", "results.json", "model.pt", "stages", "report")


class RunDirectoryError(UserError, RuntimeError):
    """The run directory belongs to a different recipe, or is not one sparsewino may change."""


def is_run_dir(run_dir: Path) -> bool:
    """Whether ``run_dir`` carries :data:`MARKER` (a directory sparsewino created)."""
    marker = run_dir / MARKER
    return run_dir.is_dir() and marker.is_file() and not marker.is_symlink()


def check_takeover(run_dir: Path, what: str = "run", fresh: bool = False) -> None:
    """Refuse to write into ``run_dir`` (or, ``fresh``, to delete its files) unless it is new,
    empty, or a sparsewino run directory.

    Raises:
        RunDirectoryError: it holds files and sparsewino did not create it.
    """
    if not run_dir.exists() and not run_dir.is_symlink():
        return
    if not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir} is not a directory; choose another --run-dir")
    if is_run_dir(run_dir):
        return
    others = sorted(p.name for p in run_dir.iterdir() if p.name not in (MARKER, LOCK))
    if others:
        shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
        raise RunDirectoryError(
            f"{'refusing to delete the files of ' if fresh else ''}{run_dir}: it is not a "
            f"sparsewino run directory (sparsewino did not create it: no {MARKER} marker) and "
            f"holds files ({shown}), which the {what} will not "
            f"{'delete' if fresh else 'write over'}. Choose a new or empty --run-dir")


@contextlib.contextmanager
def locked_run_dir(run_dir: Path) -> Iterator[Path]:
    """Hold the run directory's exclusive lock (creating the directory) while the block runs.

    The lock is an ``flock`` on :data:`LOCK`: released on any exit of the process, ``kill -9``
    included, so a crashed run never leaves a stale lock. Where ``fcntl`` does not exist the
    block runs unlocked.

    Raises:
        RunDirectoryError: another process holds the lock (the message names its pid).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:                                    # not POSIX: no locking
        yield run_dir
        return
    path = run_dir / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            raise RunDirectoryError(
                f"{run_dir} is in use by another sparsewino process (pid {holder}); wait for it "
                "to finish, or use another --run-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield run_dir
    finally:
        os.close(fd)                                       # releases the lock


def create_run_dir(run_dir: Path) -> Path:
    """Create ``run_dir`` (if needed) and mark it as a sparsewino run directory."""
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_dir / MARKER
    if not marker.is_file() or marker.is_symlink():
        marker.unlink(missing_ok=True)
        marker.write_text("created by sparsewino run; `sparsewino run --fresh` may delete the "
                          "run files in this directory\n")
    return run_dir


def clear_run_dir(run_dir: Path) -> list[str]:
    """Delete the files of a previous run in ``run_dir`` (``--fresh``).

    Only a directory holding :data:`MARKER` is touched, and only the entries a run writes
    (:data:`RUN_ENTRIES` and the marker) are deleted; symbolic links are removed, never
    followed.

    Returns:
        The names of the entries kept (not written by a run).

    Raises:
        RunDirectoryError: ``run_dir`` is not a directory sparsewino created.
    """
    if not run_dir.exists() and not run_dir.is_symlink():
        return []
    marker = run_dir / MARKER
    if not run_dir.is_dir() or marker.is_symlink() or not marker.is_file():
        raise RunDirectoryError(
            f"refusing to delete {run_dir}: sparsewino did not create it (no {MARKER} file), so "
            "--fresh leaves it alone. Choose another --run-dir, or delete it yourself if it "
            "really is an old run")
    leftovers = [p.name for p in run_dir.glob(".*.tmp")          # of interrupted atomic saves
                 if any(p.name.startswith(f".{name}.") for name in RUN_ENTRIES)]
    for name in (*RUN_ENTRIES, *leftovers, MARKER):
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    kept = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK)
    if kept:
        logger.warning("--fresh: kept %d entr%s of %s that no run wrote: %s", len(kept),
                       "y" if len(kept) == 1 else "ies", run_dir, ", ".join(kept[:5]))
    return kept
