"""The adder product of AdderConv2d / WinogradAdderConv2d: a C++ kernel (AVX2 / portable) or PyTorch.

For a batch ``b`` of row sets (the patches of an adder convolution, or the transformed tiles
at one Winograd position), with inputs ``S`` ``(B, A, J)`` and weights ``R`` ``(B, C, J)``:

* :func:`adder_product`: ``Y[b, a, c] = -sum_j |S[b, a, j] - R[b, c, j]|^p`` ``(B, A, C)``;
* :func:`adder_gradient`: ``O[b, a, j] = sum_c G[b, a, c] * f(R[b, c, j] - S[b, a, j])`` with
  ``f = clamp(., -1, 1)`` (``mode="hardtanh"``) or the derivative of ``|d|^p``
  (``mode="exact"``).

The C++ library ``_adder_kernels`` (built by ``pip install``, optional: a failed build leaves
the PyTorch path) is chosen per CPU: ``avx2`` (AVX2 + FMA) when the CPU has it, else
``portable``. ``SPARSEWINO_ADDER_BACKEND`` (``auto``, ``avx2``, ``portable``, ``torch``) or
:func:`use_backend` forces one; forcing one the CPU or the build lacks raises a clear
``RuntimeError`` (the library checks the CPU before it runs any AVX2 code: never SIGILL).
Only float32 CPU tensors run on the C++ kernel; anything else (float64, other devices) runs
the PyTorch path.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import warnings
from pathlib import Path
from typing import Iterator

import torch

from ...native import NativeLibrary

__all__ = ["adder_product", "adder_gradient", "backend", "available_backends", "use_backend",
           "load_error", "BACKENDS", "ENV_VAR", "GRAD_MODES"]

ENV_VAR = "SPARSEWINO_ADDER_BACKEND"
#: backend name -> (ISA code of the C library or None for PyTorch, CPU flags it needs)
BACKENDS: dict[str, tuple[int | None, tuple[str, ...]]] = {
    "avx2": (2, ("avx2", "fma")), "portable": (1, ()), "torch": (None, ())}
GRAD_MODES = {"hardtanh": 0, "exact": 1}
_ABI_VERSION = 1
_i32, _i64, _f32, _ptr = ctypes.c_int32, ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
_STATUS = {-1: "invalid arguments", -4: "instruction set not supported by this CPU or build"}


class _ForwardArgs(ctypes.Structure):
    _fields_ = [("B", _i64), ("A", _i64), ("C", _i64), ("J", _i64), ("S", _ptr), ("Rt", _ptr),
                ("Y", _ptr), ("p", _f32), ("threads", _i32), ("isa", _i32)]


class _BackwardArgs(ctypes.Structure):
    _fields_ = [("B", _i64), ("A", _i64), ("C", _i64), ("J", _i64), ("G", _ptr), ("R", _ptr),
                ("S", _ptr), ("O", _ptr), ("p", _f32), ("mode", _i32), ("threads", _i32),
                ("isa", _i32)]


_state: dict[str, object] = {"warned": False}
_override = threading.local()


def _declare(lib: ctypes.CDLL) -> None:
    for name in ("sa_isa_compiled", "sa_isa_supported"):
        getattr(lib, name).restype = _i32
        getattr(lib, name).argtypes = [_i32]
    lib.sa_forward.restype = _i32
    lib.sa_forward.argtypes = [ctypes.POINTER(_ForwardArgs)]
    lib.sa_backward.restype = _i32
    lib.sa_backward.argtypes = [ctypes.POINTER(_BackwardArgs)]


_native = NativeLibrary(Path(__file__).resolve().parent, "_adder_kernels",
                        "the adder kernel library", "sa_abi_version", _ABI_VERSION, _declare)


def _library() -> ctypes.CDLL | None:
    return _native.get()


def load_error() -> str | None:
    """Why the C++ adder kernels are unavailable, or ``None`` when they loaded."""
    return _native.error()


def _unavailable_reason(name: str) -> str | None:
    isa, flags = BACKENDS[name]
    if isa is None:
        return None
    lib = _library()
    if lib is None:
        return load_error()
    if not lib.sa_isa_compiled(isa):
        return f"the {name} build is not part of this library (compiler or platform)"
    if not lib.sa_isa_supported(isa):
        return f"this CPU lacks {' '.join(flags)}"
    return None


def available_backends() -> list[str]:
    """Backends that run on this machine, most preferred first (``"torch"`` always).

    Examples:
        >>> available_backends()[-1]
        'torch'
    """
    return [name for name in BACKENDS if _unavailable_reason(name) is None]


def backend() -> str:
    """The backend adder layers use now (``auto``: the first of :func:`available_backends`).

    Raises:
        ValueError: the requested name is not a backend.
        RuntimeError: a backend forced by name cannot run here (the message says why).
    """
    raw = getattr(_override, "name", None) or os.environ.get(ENV_VAR) or "auto"
    requested = raw.strip().lower()
    available = available_backends()
    if requested == "auto":
        chosen = available[0]
        if chosen == "torch" and not _state["warned"]:
            _state["warned"] = True
            warnings.warn(f"sparsewino adder layers: {load_error()}. They run on a slower "
                          "pure-PyTorch path.", RuntimeWarning, stacklevel=2)
        return chosen
    if requested not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={raw!r} is not an adder backend; use one of "
                         f"{['auto', *BACKENDS]}")
    if requested not in available:
        raise RuntimeError(f"sparsewino adder backend {requested!r} is not available: "
                           f"{_unavailable_reason(requested)}. Available here: {available}")
    return requested


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Run the adder products on backend ``name`` (or ``"auto"``) inside a ``with`` block.

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


def _check_p(p: float) -> float:
    p = float(p)
    if not 1.0 <= p <= 2.0:
        raise ValueError(f"the adder exponent p must lie in [1, 2], got {p}")
    return p


def _compiled(*tensors: torch.Tensor) -> int | None:
    """The ISA code to run these tensors on, or ``None`` for the PyTorch path."""
    name = backend()
    isa = BACKENDS[name][0]
    if isa is None or any(t.dtype != torch.float32 or t.device.type != "cpu" for t in tensors):
        return None
    return isa


def _check_status(status: int) -> None:
    if status != 0:
        raise RuntimeError(f"sparsewino adder kernel failed: {_STATUS.get(status, status)}")


def _chunk(rows: int, per_row: int) -> int:
    return max(1, min(rows, (1 << 22) // max(per_row, 1)))


def _power(d: torch.Tensor, p: float) -> torch.Tensor:
    a = d.abs()
    return a if p == 1.0 else (a * a if p == 2.0 else a.pow(p))


def _slope(d: torch.Tensor, p: float, mode: str) -> torch.Tensor:
    if mode == "hardtanh":
        return d.clamp(-1.0, 1.0)
    if p == 1.0:
        return d.sign()
    if p == 2.0:
        return 2.0 * d
    return p * d.abs().pow(p - 1.0) * d.sign()


def adder_product(S: torch.Tensor, R: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """``Y[b, a, c] = -sum_j |S[b, a, j] - R[b, c, j]|^p`` for ``S`` ``(B, A, J)``, ``R`` ``(B, C, J)``.

    No autograd (the layers' autograd functions call it); ``p`` in [1, 2].

    Examples:
        >>> S, R = torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[0.0, 0.0], [1.0, 4.0]]])
        >>> adder_product(S, R).tolist()
        [[[-3.0, -2.0]]]
    """
    p = _check_p(p)
    B, A, J = S.shape
    C = R.shape[1]
    isa = _compiled(S, R)
    if isa is None:
        out = S.new_empty(B, A, C)
        step = _chunk(A, C * J)
        for a in range(0, A, step):
            d = S[:, a:a + step, None, :] - R[:, None, :, :]
            out[:, a:a + step] = -_power(d, p).sum(-1)
        return out
    S = S.contiguous()
    Rt = R.transpose(1, 2).contiguous()
    Y = torch.empty(B, A, C, dtype=torch.float32)
    args = _ForwardArgs(B, A, C, J, S.data_ptr(), Rt.data_ptr(), Y.data_ptr(), p,
                        torch.get_num_threads(), isa)
    _check_status(_library().sa_forward(ctypes.byref(args)))
    return Y


def adder_gradient(G: torch.Tensor, R: torch.Tensor, S: torch.Tensor, p: float = 1.0,
                   mode: str = "hardtanh") -> torch.Tensor:
    """``O[b, a, j] = sum_c G[b, a, c] * f(R[b, c, j] - S[b, a, j])``.

    Args:
        G: ``(B, A, C)`` output gradients; R: ``(B, C, J)``; S: ``(B, A, J)``.
        p: the exponent of the forward (``mode="exact"`` only).
        mode: ``"hardtanh"`` (f = clamp(d, -1, 1), AdderNet's input gradient) or ``"exact"``
            (f = p|d|^(p-1) sign(d), the derivative of the forward).

    Returns:
        ``(B, A, J)``.
    """
    p = _check_p(p)
    if mode not in GRAD_MODES:
        raise ValueError(f"mode must be one of {sorted(GRAD_MODES)}, got {mode!r}")
    B, A, C = G.shape
    J = S.shape[2]
    isa = _compiled(G, R, S)
    if isa is None:
        out = S.new_zeros(B, A, J)
        step = _chunk(A, C * J)
        for a in range(0, A, step):
            d = R[:, None, :, :] - S[:, a:a + step, None, :]               # (B, a, C, J)
            out[:, a:a + step] = (G[:, a:a + step, :, None] * _slope(d, p, mode)).sum(2)
        return out
    G, R, S = G.contiguous(), R.contiguous(), S.contiguous()
    O = torch.empty(B, A, J, dtype=torch.float32)
    args = _BackwardArgs(B, A, C, J, G.data_ptr(), R.data_ptr(), S.data_ptr(), O.data_ptr(), p,
                         GRAD_MODES[mode], torch.get_num_threads(), isa)
    _check_status(_library().sa_backward(ctypes.byref(args)))
    return O
