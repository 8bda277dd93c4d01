"""What an artifact records about where it was made: the CPU (model and the flags the backends
need) and the library version."""
from __future__ import annotations

from importlib import metadata
from typing import Any

from ...timing import cpu_flags, cpu_model
from .. import kernels

__all__ = ["cpu_description", "library_version"]


def cpu_description() -> dict[str, Any]:
    """``{"model": ..., "flags": [...]}``: the CPU model name and which of the flags the
    registered backends need it has (:func:`sparsewino.timing.cpu_model` and
    :func:`~sparsewino.timing.cpu_flags`)."""
    present = set(cpu_flags().split())
    wanted = sorted({flag for b in kernels.backends.registered_backends() for flag in b.cpu_flags})
    return {"model": cpu_model(), "flags": [flag for flag in wanted if flag in present]}


def library_version() -> str:
    """The installed sparsewino version (``"unknown"`` when run from a source tree)."""
    try:
        return metadata.version("sparsewino")
    except metadata.PackageNotFoundError:
        return "unknown"
