"""The package's one native library, ``sparsewino/native/_sw_kernels``: found, loaded and checked once.

Every user (the engine's operations, the adder layers' product, the backend choice) goes
through :func:`library`; a missing, broken or stale build is the string of
:func:`load_error`, and each user falls back to its PyTorch path.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

from . import abi
from .loader import NativeLibrary

__all__ = ["library", "library_path", "load_error", "LIBRARY_NAME"]

LIBRARY_NAME = "_sw_kernels"


def _declare(lib: ctypes.CDLL) -> None:
    """Declare every function, then check the ABI tables (``OSError`` on a mismatch)."""
    abi.declare_functions(lib)
    abi.check_library(lib)


def _locate() -> Path | None:
    return library_path()


LIBRARY = NativeLibrary(Path(__file__).resolve().parent, LIBRARY_NAME,
                        "the compiled kernel library", "sw_abi_version", abi.ABI_VERSION,
                        _declare, locate=_locate)


def library_path() -> Path | None:
    """Path of the built library inside the package, or ``None`` if it was not built."""
    return LIBRARY.find()


def library() -> ctypes.CDLL | None:
    """The loaded library, or ``None`` (see :func:`load_error`)."""
    return LIBRARY.get()


def load_error() -> str | None:
    """Why the library is unavailable, or ``None`` when it loaded."""
    return LIBRARY.error()
