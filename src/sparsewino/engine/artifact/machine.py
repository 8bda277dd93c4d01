"""What an artifact records about where it was made: the CPU (model and the flags the backends
need) and the library version."""
from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import kernels

__all__ = ["cpu_description", "library_version"]


def cpu_description() -> dict[str, Any]:
    """``{"model": ..., "flags": [...]}``: the CPU model name and which of the flags the
    registered backends need it has (from ``/proc/cpuinfo``; the platform's processor name and
    no flags elsewhere)."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    wanted = sorted({flag for b in kernels.backends.registered_backends() for flag in b.cpu_flags})
    return {"model": model, "flags": [flag for flag in wanted if flag in flags]}


def library_version() -> str:
    """The installed sparsewino version (``"unknown"`` when run from a source tree)."""
    try:
        return metadata.version("sparsewino")
    except metadata.PackageNotFoundError:
        return "unknown"
