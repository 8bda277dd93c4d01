"""The native layer at the bottom of the package: one C++ library, its loader, CPU detection and backends.

* :mod:`~sparsewino.native.loader`: :class:`NativeLibrary`, finding and loading a ctypes library;
* :mod:`~sparsewino.native.abi`: the ctypes mirrors of the library's structs, the one list of
  operations (:data:`OPERATIONS`, :data:`OP_KINDS`), the constants, and the load-time check of
  the library's tables against them;
* :mod:`~sparsewino.native.handle`: the package's one library (``_sw_kernels``):
  :func:`library`, :func:`load_error`;
* :mod:`~sparsewino.native.backends`: the backend registry (``avx512``, ``avx2``, ``portable``,
  ``torch``), the CPU check, and the one choice (:func:`backend`, :func:`use_backend`,
  ``SPARSEWINO_ENGINE_BACKEND``).

``sparsewino.engine.kernels`` (the engine's operations) and ``sparsewino.nn.adder_kernels``
(the adder layers' product) both run through it. It imports nothing else from the package.
"""
from __future__ import annotations

from . import abi
from .backends import (
    DEPRECATED_ENV_VAR,
    ENV_VAR,
    Backend,
    available_backends,
    backend,
    get_backend,
    isa_code,
    register_backend,
    registered_backends,
    unavailable_reason,
    use_backend,
)
from .handle import library, library_path, load_error
from .loader import NativeLibrary

__all__ = ["NativeLibrary", "abi", "library", "library_path", "load_error", "Backend",
           "register_backend", "registered_backends", "get_backend", "backend",
           "available_backends", "use_backend", "isa_code", "unavailable_reason", "ENV_VAR",
           "DEPRECATED_ENV_VAR", "check_status", "STATUS_MESSAGES"]

#: Messages of the library's negative status codes (``enum sw_status``).
STATUS_MESSAGES = {
    -1: "invalid arguments (null pointer or inconsistent sizes)",
    -2: "workspace too small",
    -3: f"tile sizes not supported by the kernel (need 2 <= n <= {abi.MAX_N}, m < n)",
    -4: "instruction set not supported by this CPU or not in this build",
    -5: "workspace not 64-byte aligned",
    -6: "unknown operation in a program",
}


def check_status(status: int, what: str = "kernel") -> None:
    """Raise ``RuntimeError`` for a non-zero status of the C library."""
    if status != 0:
        raise RuntimeError(f"sparsewino {what} failed: "
                           f"{STATUS_MESSAGES.get(status, f'status {status}')}")
