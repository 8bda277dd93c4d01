"""The adder product of AdderConv2d / WinogradAdderConv2d: the native library's ``adder`` kernels or PyTorch.

For a batch ``b`` of row sets (the patches of an adder convolution, or the transformed tiles
at one Winograd position), with inputs ``S`` ``(B, A, J)`` and weights ``R`` ``(B, C, J)``:

* :func:`adder_product`: ``Y[b, a, c] = -sum_j |S[b, a, j] - R[b, c, j]|^p`` ``(B, A, C)``;
* :func:`adder_gradient`: ``O[b, a, j] = sum_c G[b, a, c] * f(R[b, c, j] - S[b, a, j])`` with
  ``f = clamp(., -1, 1)`` (``mode="hardtanh"``) or the derivative of ``|d|^p``
  (``mode="exact"``).

The kernels (``sw_adder_forward`` / ``sw_adder_backward``) are part of the package's one native
library (:mod:`sparsewino.native`); the backend is the native layer's one choice
(``avx512``, ``avx2``, ``portable``, ``torch``; ``SPARSEWINO_ENGINE_BACKEND`` or
:func:`use_backend` forces one; the former ``SPARSEWINO_ADDER_BACKEND`` still works with a
``DeprecationWarning``). Forcing one the CPU or the build lacks raises a clear
``RuntimeError`` (the library checks the CPU before it runs any SIMD code: never SIGILL).
Only float32 CPU tensors run on the C++ kernel; anything else (float64, other devices) runs
the PyTorch path.
"""
from __future__ import annotations

import contextlib
import ctypes

import torch

from ... import native
from ...native.abi import ADDER_GRAD_EXACT, ADDER_GRAD_HARDTANH, SwAdderArgs, SwAdderGradArgs

__all__ = ["adder_product", "adder_gradient", "backend", "available_backends", "use_backend",
           "load_error", "ENV_VAR", "GRAD_MODES"]

ENV_VAR = native.ENV_VAR
GRAD_MODES = {"hardtanh": ADDER_GRAD_HARDTANH, "exact": ADDER_GRAD_EXACT}


def load_error() -> str | None:
    """Why the C++ kernels are unavailable, or ``None`` when they loaded."""
    return native.load_error()


def available_backends() -> list[str]:
    """Backends that run on this machine, most preferred first (``"torch"`` always).

    Examples:
        >>> available_backends()[-1]
        'torch'
    """
    return native.available_backends()


def backend() -> str:
    """The backend adder layers use now (the native layer's choice, :func:`sparsewino.native.backend`).

    Raises:
        ValueError: the requested name is not a backend.
        RuntimeError: a backend forced by name cannot run here (the message says why).
    """
    return native.backend("adder backend")


def use_backend(name: str) -> contextlib.AbstractContextManager[str]:
    """Run the adder products (and compiled layers) on backend ``name`` inside a ``with`` block.

    Examples:
        >>> with use_backend("torch"):
        ...     backend()
        'torch'
    """
    return native.use_backend(name)


def _check_p(p: float) -> float:
    p = float(p)
    if not 1.0 <= p <= 2.0:
        raise ValueError(f"the adder exponent p must lie in [1, 2], got {p}")
    return p


def _compiled(*tensors: torch.Tensor) -> int | None:
    """The ISA code to run these tensors on, or ``None`` for the PyTorch path."""
    isa = native.get_backend(backend()).isa
    if isa is None or any(t.dtype != torch.float32 or t.device.type != "cpu" for t in tensors):
        return None
    return isa


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
    args = SwAdderArgs(B, A, C, J, S.data_ptr(), Rt.data_ptr(), Y.data_ptr(), p,
                       torch.get_num_threads(), isa)
    native.check_status(native.library().sw_adder_forward(ctypes.byref(args)), "adder kernel")
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
    args = SwAdderGradArgs(B, A, C, J, G.data_ptr(), R.data_ptr(), S.data_ptr(), O.data_ptr(), p,
                           GRAD_MODES[mode], torch.get_num_threads(), isa)
    native.check_status(native.library().sw_adder_backward(ctypes.byref(args)), "adder kernel")
    return O
