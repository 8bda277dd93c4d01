"""Keep freed memory in the process for long CPU training jobs (glibc's allocator settings).

PyTorch's CPU allocator hands every tensor to ``malloc``. With glibc's defaults, a freed
multi-megabyte activation goes back to the kernel (``munmap`` or a heap trim) and the next step's
allocation of the same size page-faults it in again, zero-filled: a training run of the demo
recipe took 19.7 million minor page faults and 44 s of system time on 2 cores. Keeping freed
memory (a fixed 32 MiB ``mmap`` threshold, no trimming, heap grown 64 MiB at a time) removes ~4/5
of those faults; the process keeps its peak heap until it exits.

Used by the long-running CLI commands (``run``, ``study``, ``train``, ``prune``); a library user
calls :func:`retain_freed_memory` or sets the equivalent ``MALLOC_*_`` environment variables.
``SPARSEWINO_MALLOC=default`` turns it off. Elsewhere than glibc it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["retain_freed_memory", "SETTINGS"]

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: (parameter, value): allocations above 32 MiB (glibc's largest mmap threshold) still map
#: directly; below it, freed memory stays in the heap, which is trimmed only above 1 GiB free.
SETTINGS = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))


def retain_freed_memory() -> bool:
    """Apply :data:`SETTINGS` with ``mallopt``; ``True`` when every setting was accepted.

    ``False`` (nothing changed) on other C libraries or platforms, or when the environment
    variable ``SPARSEWINO_MALLOC`` is ``default``.
    """
    if os.environ.get("SPARSEWINO_MALLOC", "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in SETTINGS)
