"""Loader of the compiled kernels (ctypes), their argument structs, and the choice of backend.

The backends are objects in :mod:`~sparsewino.engine.kernels.backends` (``avx512``, ``avx2``,
``portable``, ``torch``). The automatic choice takes the most preferred *verified* backend
this CPU runs; the environment variable ``SPARSEWINO_ENGINE_BACKEND`` (``auto`` or a name) or
:func:`use_backend` forces one. Forcing a backend the CPU or the build lacks is a clear
``RuntimeError``, never an illegal instruction: the library checks the CPU before it runs
any instruction-set build. Without the compiled library the engine warns once and runs the
``torch`` backend.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import warnings
from pathlib import Path
from typing import Iterator

from ...native import NativeLibrary
from .backends import Backend, get_backend, registered_backends

__all__ = ["backend", "backend_info", "available_backends", "use_backend", "library",
           "library_path", "load_error", "isa_code", "SwMatrices", "SwConv2dArgs", "SwConv3dArgs",
           "SwGemmArgs", "SwPool2dArgs", "SwEltwiseArgs", "SwExtractArgs", "SwOp", "STATUS_MESSAGES",
           "ABI_VERSION", "DENSE_ROWS", "SLICE_ROWS", "CHUNK_ROWS", "MAX_COLUMNS", "OP_KINDS",
           "ENV_VAR", "check_status"]

ABI_VERSION = 6
DENSE_ROWS = 6                       # SW_DENSE_ROWS in sw_kernels.h
SLICE_ROWS = 4                       # SW_SLICE_ROWS
CHUNK_ROWS = 24                      # SW_CHUNK_ROWS
MAX_COLUMNS = 65536                  # SW_MAX_COLUMNS: 16-bit sparse column indices
OP_KINDS = {"conv2d": 1, "gemm": 2, "pool2d": 3, "eltwise": 4, "conv3d": 5, "extract": 6}
POOL_MAX, POOL_AVG = 0, 1                        # sw_pool_kind
ELTWISE_ADD, ELTWISE_AFFINE, ELTWISE_COPY = 0, 1, 2    # sw_eltwise_kind (ReLU: a copy with relu=1)
ENV_VAR = "SPARSEWINO_ENGINE_BACKEND"
_LIBRARY_NAME = "_sw_kernels"
STATUS_MESSAGES = {
    -1: "invalid arguments (null pointer or inconsistent sizes)",
    -2: "workspace too small",
    -3: "tile sizes not supported by the kernel (need 2 <= n <= 8, m < n)",
    -4: "instruction set not supported by this CPU or not in this build",
    -5: "workspace not 64-byte aligned",
    -6: "unknown operation in a program",
}

_i32, _i64, _ptr = ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p


class SwMatrices(ctypes.Structure):
    """Mirror of ``struct sw_matrices`` (pointers as addresses)."""

    _fields_ = [("P", _i32), ("K", _i32), ("C", _i32), ("formats", _ptr), ("slice_ptr", _ptr),
                ("slice_rows", _ptr), ("col", _ptr), ("val", _ptr), ("dense_index", _ptr),
                ("dense", _ptr), ("half", _i32), ("max_slice", _i32)]


class SwConv2dArgs(ctypes.Structure):
    """Mirror of ``struct sw_conv2d_args``."""

    _fields_ = [
        ("N", _i32), ("C", _i32), ("H", _i32), ("W", _i32),
        ("K", _i32), ("Ho", _i32), ("Wo", _i32),
        ("n", _i32), ("m", _i32), ("pad_top", _i32), ("pad_left", _i32),
        ("bt", _ptr), ("at", _ptr), ("w", SwMatrices), ("bias", _ptr),
        ("relu_input", _i32), ("relu_output", _i32), ("pool", _i32),
        ("residual", _ptr), ("x", _ptr), ("y", _ptr),
        ("workspace", _ptr), ("workspace_floats", _i64),
        ("threads", _i32), ("isa", _i32), ("tile_block", _i32), ("mode", _i32), ("lanes", _i32),
    ]


class SwConv3dArgs(ctypes.Structure):
    """Mirror of ``struct sw_conv3d_args``."""

    _fields_ = [
        ("N", _i32), ("C", _i32), ("D", _i32), ("H", _i32), ("W", _i32),
        ("K", _i32), ("Do", _i32), ("Ho", _i32), ("Wo", _i32),
        ("n", _i32), ("m", _i32), ("pad_front", _i32), ("pad_top", _i32), ("pad_left", _i32),
        ("bt", _ptr), ("at", _ptr), ("w", SwMatrices), ("bias", _ptr),
        ("relu_input", _i32), ("relu_output", _i32),
        ("residual", _ptr), ("x", _ptr), ("y", _ptr),
        ("workspace", _ptr), ("workspace_floats", _i64),
        ("threads", _i32), ("isa", _i32), ("tile_block", _i32), ("mode", _i32), ("lanes", _i32),
    ]


class SwGemmArgs(ctypes.Structure):
    """Mirror of ``struct sw_gemm_args``."""

    _fields_ = [
        ("N", _i32), ("C", _i32), ("K", _i32), ("S", _i32), ("w", SwMatrices),
        ("bias", _ptr), ("residual", _ptr), ("relu", _i32), ("x", _ptr), ("y", _ptr),
        ("workspace", _ptr), ("workspace_floats", _i64),
        ("threads", _i32), ("isa", _i32), ("tile_block", _i32), ("mode", _i32), ("lanes", _i32),
    ]


class SwPool2dArgs(ctypes.Structure):
    """Mirror of ``struct sw_pool2d_args``."""

    _fields_ = [
        ("N", _i32), ("C", _i32), ("H", _i32), ("W", _i32), ("Ho", _i32), ("Wo", _i32),
        ("kh", _i32), ("kw", _i32), ("sh", _i32), ("sw", _i32), ("ph", _i32), ("pw", _i32),
        ("kind", _i32), ("count_include_pad", _i32), ("relu", _i32),
        ("x", _ptr), ("y", _ptr), ("threads", _i32), ("isa", _i32),
    ]


class SwEltwiseArgs(ctypes.Structure):
    """Mirror of ``struct sw_eltwise_args``."""

    _fields_ = [
        ("kind", _i32), ("relu", _i32), ("outer", _i64), ("channels", _i64), ("inner", _i64),
        ("a", _ptr), ("b", _ptr), ("scale", _ptr), ("shift", _ptr), ("y", _ptr),
        ("threads", _i32), ("isa", _i32),
    ]


class SwExtractArgs(ctypes.Structure):
    """Mirror of ``struct sw_extract_args`` (sub-images of a decomposed convolution's input)."""

    _fields_ = [
        ("N", _i32), ("C", _i32), ("H", _i32), ("W", _i32), ("S", _i32), ("Ho", _i32),
        ("Wo", _i32), ("sh", _i32), ("sw", _i32), ("offsets", _ptr), ("x", _ptr), ("y", _ptr),
        ("threads", _i32),
    ]


class SwOp(ctypes.Structure):
    """Mirror of ``struct sw_op``: one step of a program."""

    _fields_ = [("kind", _i32), ("args", _ptr)]


_state: dict[str, object] = {"warned": False, "available": None, "choices": {}}
_override = threading.local()


def _declare_functions(lib: ctypes.CDLL) -> None:
    """Argument and result types of every exported function."""
    for name in ("sw_abi_version", "sw_dense_rows", "sw_slice_rows", "sw_chunk_rows",
                 "sw_max_n"):
        getattr(lib, name).restype = _i32
    for name in ("sw_isa_supported", "sw_isa_compiled", "sw_isa_lanes"):
        getattr(lib, name).restype = _i32
        getattr(lib, name).argtypes = [_i32]
    for name, struct in (("sw_conv2d", SwConv2dArgs), ("sw_gemm", SwGemmArgs),
                         ("sw_conv3d", SwConv3dArgs)):
        getattr(lib, f"{name}_forward").restype = _i32
        getattr(lib, f"{name}_forward").argtypes = [ctypes.POINTER(struct)]
        getattr(lib, f"{name}_workspace").restype = _i32
        getattr(lib, f"{name}_workspace").argtypes = [ctypes.POINTER(struct),
                                                      ctypes.POINTER(_i64)]
    for name, struct in (("sw_pool2d_forward", SwPool2dArgs),
                         ("sw_eltwise_forward", SwEltwiseArgs),
                         ("sw_extract_forward", SwExtractArgs)):
        getattr(lib, name).restype = _i32
        getattr(lib, name).argtypes = [ctypes.POINTER(struct)]
    lib.sw_run_program.restype = _i32
    lib.sw_run_program.argtypes = [ctypes.POINTER(SwOp), _i32, ctypes.POINTER(_i32)]
    for name, struct in (("sw_conv2d_plan", SwConv2dArgs), ("sw_conv3d_plan", SwConv3dArgs)):
        getattr(lib, name).restype = _i32
        getattr(lib, name).argtypes = [ctypes.POINTER(struct)] + [ctypes.POINTER(_i32)] * 4


def _declare(lib: ctypes.CDLL) -> None:
    _declare_functions(lib)
    constants = (lib.sw_dense_rows(), lib.sw_slice_rows(), lib.sw_chunk_rows())
    if constants != (DENSE_ROWS, SLICE_ROWS, CHUNK_ROWS):
        raise OSError("packing constants differ between library and Python (stale build)")


_native = NativeLibrary(Path(__file__).resolve().parent, _LIBRARY_NAME,
                        "the compiled kernel library", "sw_abi_version", ABI_VERSION, _declare,
                        locate=lambda: library_path())


def library_path() -> Path | None:
    """Path of the built kernel library inside the package, or ``None`` if it was not built."""
    return _native.find()


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, or ``None`` (see :func:`load_error`)."""
    return _native.get()


def load_error() -> str | None:
    """Why the compiled library is unavailable, or ``None`` when it loaded."""
    return _native.error()


def _unavailable_reason(entry: Backend) -> str | None:
    """Why ``entry`` cannot run here, or ``None`` when it can."""
    if not entry.compiled:
        return None
    lib = library()
    if lib is None:
        return load_error()
    if not lib.sw_isa_compiled(entry.isa):
        return f"the {entry.name} build is not part of this library (compiler or platform)"
    if not lib.sw_isa_supported(entry.isa):
        needs = " ".join(entry.cpu_flags) or entry.name
        return f"this CPU lacks {needs}"
    return None


def available_backends() -> list[str]:
    """Backends that can run on this machine, most preferred first (``"torch"`` always).

    Includes backends not yet verified on hardware (they run only when forced by name).
    """
    cached = _state.get("available")
    if cached is None:
        cached = _state["available"] = tuple(
            b.name for b in registered_backends() if _unavailable_reason(b) is None)
    return list(cached)  # type: ignore[arg-type]


def backend() -> str:
    """Name of the backend compiled layers run on now.

    ``auto`` (the default) is the most preferred verified backend this machine runs.

    Raises:
        ValueError: the requested name is not a backend.
        RuntimeError: a backend was requested by name but cannot run here (the message says
            why: missing CPU flags, missing build, library not loaded).

    Examples:
        >>> backend() in available_backends()
        True
    """
    raw = getattr(_override, "name", None) or os.environ.get(ENV_VAR) or "auto"
    chosen = _state["choices"].get(raw)  # type: ignore[union-attr]
    if chosen is not None:
        return chosen
    requested = raw.strip().lower()
    available = available_backends()
    if requested == "auto":
        chosen = next(name for name in available if get_backend(name).verified)
        if chosen == "torch" and not _state["warned"]:
            _state["warned"] = True
            warnings.warn(f"sparsewino.engine: {load_error()}. Compiled layers fall back to a "
                          "pure-PyTorch path without the sparse speed-up.",
                          RuntimeWarning, stacklevel=2)
    else:
        try:
            entry = get_backend(requested)
        except ValueError as exc:
            raise ValueError(f"{ENV_VAR}={raw!r}: {exc}") from None
        if requested not in available:
            raise RuntimeError(f"sparsewino.engine backend {requested!r} is not available: "
                               f"{_unavailable_reason(entry)}. Available here: {available}")
        chosen = requested
    _state["choices"][raw] = chosen  # type: ignore[index]
    return chosen


def backend_info(name: str | None = None) -> Backend:
    """The :class:`~sparsewino.engine.kernels.backends.Backend` object of ``name`` (default:
    the one in use)."""
    return get_backend(name or backend())


def isa_code(name: str) -> int:
    """The C library's instruction-set code of a compiled backend."""
    entry = get_backend(name)
    if entry.isa is None:
        raise ValueError(f"backend {name!r} has no compiled kernels")
    return entry.isa


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


def check_status(status: int, what: str = "kernel") -> None:
    """Raise ``RuntimeError`` for a non-zero status of the C library."""
    if status != 0:
        raise RuntimeError(f"sparsewino {what} failed: "
                           f"{STATUS_MESSAGES.get(status, f'status {status}')}")
