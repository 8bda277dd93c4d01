"""Loader of the compiled sparse Winograd kernels (ctypes) and the choice of backend.

Backends, fastest first:

* ``"avx2"``: the C++/OpenMP kernel built for AVX2+FMA (chosen when the CPU has both);
* ``"portable"``: the same kernel built for any x86-64/other CPU;
* ``"torch"``: a pure-PyTorch path (no sparsity speed-up), used when the compiled library is
  missing or broken (a warning says so) or when asked for.

The environment variable ``SPARSEWINO_ENGINE_BACKEND`` (``auto``, ``avx2``, ``portable``,
``torch``) or :func:`use_backend` overrides the automatic choice.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import os
import threading
import warnings
from pathlib import Path
from typing import Iterator

__all__ = ["BACKENDS", "backend", "available_backends", "use_backend", "library",
           "library_path", "load_error", "ISA_CODES", "SwConv2dArgs", "STATUS_MESSAGES",
           "ABI_VERSION", "DENSE_ROWS"]

BACKENDS = ("avx2", "portable", "torch")
ISA_CODES = {"avx2": 2, "portable": 1}
ABI_VERSION = 2
DENSE_ROWS = 6                       # must equal SW_DENSE_ROWS in sw_kernels.h
ENV_VAR = "SPARSEWINO_ENGINE_BACKEND"
_LIBRARY_NAME = "_sw_kernels"
STATUS_MESSAGES = {
    -1: "invalid arguments (null pointer or inconsistent sizes)",
    -2: "workspace too small",
    -3: "tile sizes not supported by the kernel (need 2 <= n <= 8, m < n)",
    -4: "instruction set not supported by this CPU",
    -5: "workspace not 64-byte aligned",
}

_i32, _i64 = ctypes.c_int32, ctypes.c_int64
_pf, _pi32, _pi8 = (ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32),
                    ctypes.POINTER(ctypes.c_int8))


class SwConv2dArgs(ctypes.Structure):
    """Mirror of ``struct sw_conv2d_args`` in ``sw_kernels.h`` (pointers as addresses)."""

    _fields_ = [
        ("N", _i32), ("C", _i32), ("H", _i32), ("W", _i32),
        ("K", _i32), ("Ho", _i32), ("Wo", _i32),
        ("n", _i32), ("m", _i32), ("pad_top", _i32), ("pad_left", _i32),
        ("bt", ctypes.c_void_p), ("at", ctypes.c_void_p),
        ("formats", ctypes.c_void_p), ("rowptr", ctypes.c_void_p),
        ("col", ctypes.c_void_p), ("val", ctypes.c_void_p),
        ("dense_index", ctypes.c_void_p), ("dense", ctypes.c_void_p),
        ("bias", ctypes.c_void_p),
        ("relu_input", _i32), ("relu_output", _i32), ("pool", _i32),
        ("x", ctypes.c_void_p), ("y", ctypes.c_void_p),
        ("workspace", ctypes.c_void_p), ("workspace_floats", _i64),
        ("threads", _i32), ("isa", _i32), ("tile_block", _i32), ("mode", _i32),
    ]


_lock = threading.Lock()
_state: dict[str, object] = {"loaded": False, "lib": None, "error": None,
                             "warned": False, "available": None, "choices": {}}
_override = threading.local()


def library_path() -> Path | None:
    """Path of the built kernel library inside the package, or ``None`` if it was not built."""
    here = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"{_LIBRARY_NAME}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _load() -> None:
    path = library_path()
    if path is None:
        _state["error"] = ("the compiled kernel library was not built (no C++ compiler or a "
                           "failed build during pip install); reinstall with g++ available: "
                           "pip install -e .")
        return
    try:
        lib = ctypes.CDLL(str(path))
        lib.sw_abi_version.restype = _i32
        version = lib.sw_abi_version()
        if version != ABI_VERSION:
            raise OSError(f"ABI version {version}, expected {ABI_VERSION} (stale build; "
                          "reinstall with pip install -e .)")
        lib.sw_dense_rows.restype = _i32
        if lib.sw_dense_rows() != DENSE_ROWS:
            raise OSError("dense panel size mismatch between library and Python (stale build)")
        lib.sw_conv2d_forward.restype = _i32
        lib.sw_conv2d_forward.argtypes = [ctypes.POINTER(SwConv2dArgs)]
        lib.sw_conv2d_workspace.restype = _i32
        lib.sw_conv2d_workspace.argtypes = [ctypes.POINTER(SwConv2dArgs), ctypes.POINTER(_i64)]
        lib.sw_conv2d_plan.restype = _i32
        lib.sw_conv2d_plan.argtypes = [ctypes.POINTER(SwConv2dArgs)] + [ctypes.POINTER(_i32)] * 4
        lib.sw_isa_supported.restype = _i32
        lib.sw_isa_supported.argtypes = [_i32]
    except (OSError, AttributeError) as exc:
        _state["error"] = f"could not load {path.name}: {exc}"
        return
    _state["lib"] = lib


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, or ``None`` (see :func:`load_error`)."""
    if not _state["loaded"]:
        with _lock:
            if not _state["loaded"]:
                _load()
                _state["loaded"] = True
    return _state["lib"]  # type: ignore[return-value]


def load_error() -> str | None:
    """Why the compiled library is unavailable, or ``None`` when it loaded."""
    library()
    return _state["error"]  # type: ignore[return-value]


def available_backends() -> list[str]:
    """Backends that can run on this machine, fastest first (``"torch"`` always)."""
    cached = _state.get("available")
    if cached is None:
        lib = library()
        names = []
        if lib is not None:
            names += [name for name, code in ISA_CODES.items() if lib.sw_isa_supported(code)]
        cached = _state["available"] = tuple(names) + ("torch",)
    return list(cached)  # type: ignore[arg-type]


def backend() -> str:
    """Name of the backend compiled layers run on now: ``"avx2"``, ``"portable"`` or ``"torch"``.

    Raises:
        RuntimeError: a compiled backend was requested explicitly but cannot run here.

    Examples:
        >>> backend() in ("avx2", "portable", "torch")
        True
    """
    raw = getattr(_override, "name", None) or os.environ.get(ENV_VAR) or "auto"
    chosen = _state["choices"].get(raw)  # type: ignore[union-attr]
    if chosen is not None:
        return chosen
    requested = raw.strip().lower()
    if requested not in BACKENDS + ("auto",):
        raise ValueError(f"{ENV_VAR}={requested!r} is not a backend; use one of "
                         f"{('auto',) + BACKENDS}")
    available = available_backends()
    if requested == "auto":
        chosen = available[0]
        if chosen == "torch" and not _state["warned"]:
            _state["warned"] = True
            warnings.warn(f"sparsewino.engine: {load_error()}. Compiled layers fall back to a "
                          "pure-PyTorch path without the sparse speed-up.",
                          RuntimeWarning, stacklevel=2)
    elif requested not in available:
        reason = load_error() or f"this CPU does not support {requested}"
        raise RuntimeError(f"sparsewino.engine backend {requested!r} is not available: {reason}. "
                           f"Available: {available}")
    else:
        chosen = requested
    _state["choices"][raw] = chosen  # type: ignore[index]
    return chosen


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Run compiled layers on backend ``name`` (or ``"auto"``) inside a ``with`` block.

    Examples:
        >>> with use_backend("torch"):
        ...     backend()
        'torch'
    """
    previous = getattr(_override, "name", None)
    _override.name = name
    try:
        yield backend()
    finally:
        _override.name = previous
