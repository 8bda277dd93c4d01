"""The engine's operations on the native library: argument structs, operation codes, backends.

The library, its loader, the CPU check and the backends live in :mod:`sparsewino.native` (the
native layer at the bottom of the package); this module is the engine's view of it and keeps the
names the engine uses (``OP_KINDS``, ``SwConv2dArgs``, ..., ``backend()``). The backends are
objects in :mod:`sparsewino.native.backends` (``avx512``, ``avx2``, ``portable``, ``torch``):
the automatic choice takes the most preferred *verified* backend this CPU runs; the environment
variable ``SPARSEWINO_ENGINE_BACKEND`` (``auto`` or a name) or :func:`use_backend` forces one.
Forcing a backend the CPU or the build lacks is a clear ``RuntimeError``, never an illegal
instruction. Without the compiled library the engine warns once and runs the ``torch`` backend.

:func:`run_adder` runs one adder product as a program operation (``sw_run_program``).
"""
from __future__ import annotations

import ctypes
import math

import torch

from ...native import (
    ENV_VAR,
    STATUS_MESSAGES,
    Backend,
    abi,
    available_backends,
    backend,
    backends,
    check_status,
    get_backend,
    isa_code,
    library,
    library_path,
    load_error,
    use_backend,
)
from ...native.abi import (
    ABI_VERSION,
    BLOCK_ROWS,
    CHUNK_ROWS,
    DENSE_ROWS,
    ELTWISE_ADD,
    ELTWISE_AFFINE,
    ELTWISE_COPY,
    ELTWISE_RELU,
    MAX_COLUMNS,
    MAX_N,
    MODE_AUTO,
    MODE_BLOCKS,
    MODE_COOPERATIVE,
    OP_KINDS,
    OPERATIONS,
    POOL_AVG,
    POOL_MAX,
    SLICE_ROWS,
    Operation,
    SwAdderArgs,
    SwConv2dArgs,
    SwConv3dArgs,
    SwEltwiseArgs,
    SwExtractArgs,
    SwGemmArgs,
    SwMatrices,
    SwOp,
    SwPool2dArgs,
)

__all__ = ["backend", "backend_info", "available_backends", "use_backend", "library",
           "library_path", "load_error", "isa_code", "SwMatrices", "SwConv2dArgs", "SwConv3dArgs",
           "SwGemmArgs", "SwPool2dArgs", "SwEltwiseArgs", "SwExtractArgs", "SwAdderArgs", "SwOp",
           "STATUS_MESSAGES", "ABI_VERSION", "DENSE_ROWS", "SLICE_ROWS", "BLOCK_ROWS",
           "CHUNK_ROWS",
           "MAX_COLUMNS", "MAX_N", "max_n", "OP_KINDS", "OPERATIONS", "Operation", "ENV_VAR",
           "check_status", "ELTWISE_ADD", "ELTWISE_AFFINE", "ELTWISE_COPY", "ELTWISE_RELU",
           "POOL_MAX", "POOL_AVG", "MODE_AUTO", "MODE_BLOCKS", "MODE_COOPERATIVE", "run_adder",
           "adder_args", "eltwise_args", "run_program", "op_array", "workspace_floats", "abi",
           "backends", "get_backend", "bf16_hardware"]


def backend_info(name: str | None = None) -> Backend:
    """The :class:`~sparsewino.native.backends.Backend` object of ``name`` (default: the one in
    use)."""
    return get_backend(name or backend())


def bf16_hardware(name: str | None = None) -> bool:
    """Whether backend ``name`` (default: the one in use) runs bf16 products with AVX512-BF16
    instructions on this CPU; ``False``: it rounds in software (same results, slower than fp32),
    or it is the ``torch`` backend."""
    entry = get_backend(name or backend())
    lib = library()
    return bool(entry.isa is not None and lib is not None and
                lib.sw_isa_bf16_hardware(entry.isa))


def max_n() -> int:
    """The largest Winograd input tile ``n`` the kernels support (``sw_max_n()``; the header's
    value, checked at load, when the library is missing)."""
    lib = library()
    return int(lib.sw_max_n()) if lib is not None else MAX_N


def op_array(ops: list[tuple[str, ctypes.Structure]]) -> ctypes.Array:
    """The ``sw_op`` array of ``(operation name, args struct)`` steps for ``sw_run_program``
    (the structs must stay alive as long as the array is used)."""
    return (SwOp * len(ops))(*[SwOp(OP_KINDS[name], ctypes.cast(ctypes.pointer(args),
                                                                 ctypes.c_void_p))
                               for name, args in ops])


def workspace_floats(name: str, args: ctypes.Structure) -> int:
    """Floats of workspace operation ``name`` needs for ``args`` (0 for operations without a
    ``workspace`` field); raises ``RuntimeError`` for arguments the library refuses."""
    if not hasattr(args, "workspace"):
        return 0
    floats = ctypes.c_int64()
    check_status(getattr(library(), f"sw_{name}_workspace")(ctypes.byref(args),
                                                              ctypes.byref(floats)), "planning")
    return floats.value


def eltwise_args(kind: int, relu: bool, shape: tuple[int, ...], threads: int, isa: int,
                 scale: torch.Tensor | None = None,
                 shift: torch.Tensor | None = None) -> SwEltwiseArgs:
    """The ``sw_eltwise_args`` of one element-wise operation over a tensor of ``shape``
    (``kind``: ``ELTWISE_*``; the affine kind reads per-channel ``scale``/``shift`` over dim 1;
    data pointers are left unset)."""
    args = SwEltwiseArgs()
    args.kind, args.relu = kind, int(relu)
    affine = kind == ELTWISE_AFFINE
    args.outer = shape[0] if affine else 1
    args.channels = shape[1] if affine else 1
    args.inner = math.prod(shape) // (args.outer * args.channels)
    if scale is not None:
        args.scale, args.shift = scale.data_ptr(), shift.data_ptr()
    args.threads, args.isa = threads, isa
    return args


def run_program(ops: list[tuple[str, ctypes.Structure]]) -> None:
    """Run ``(operation name, args struct)`` steps in order with one ``sw_run_program`` call.

    Raises:
        RuntimeError: the library is unavailable, or a step failed (the message names it).
    """
    lib = library()
    if lib is None:
        raise RuntimeError(f"no compiled kernel: {load_error()}")
    array = op_array(ops)
    failed = ctypes.c_int32(-1)
    status = lib.sw_run_program(array, len(ops), ctypes.byref(failed))
    check_status(status, f"program step {failed.value} ({ops[failed.value][0]})"
                 if status else "program")


def adder_args(x: torch.Tensor, wt: torch.Tensor, y: torch.Tensor, p: float, threads: int,
               isa: int) -> SwAdderArgs:
    """The ``sw_adder_args`` of ``y = -sum_j |x[b, a, j] - wt[b, j, c]|^p`` (see :func:`run_adder`).

    The tensors must be float32, contiguous and stay alive while the struct is used.
    """
    B, A, J = x.shape
    C = wt.shape[2]
    return SwAdderArgs(B, A, C, J, x.data_ptr(), wt.data_ptr(), y.data_ptr(), float(p),
                       threads, isa)


def run_adder(x: torch.Tensor, w: torch.Tensor, p: float = 1.0, *, backend_name: str | None = None,
              threads: int | None = None) -> torch.Tensor:
    """One ``adder`` operation through ``sw_run_program``: ``y[b, a, c] = -sum_j |x[b, a, j] - w[b, c, j]|^p``.

    Args:
        x: ``(B, A, J)`` float32 CPU inputs (the patches, or transformed tiles per position).
        w: ``(B, C, J)`` float32 CPU weights (transposed to ``(B, J, C)`` for the kernel).
        p: the exponent, in [1, 2].
        backend_name: a compiled backend (default: the one in use; ``torch`` is refused).
        threads: OpenMP threads (default ``torch.get_num_threads()``).

    Returns:
        ``(B, A, C)`` float32.

    Raises:
        RuntimeError: no compiled backend, or the library refused the arguments.

    Examples:
        >>> x, w = torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[0.0, 0.0], [1.0, 4.0]]])
        >>> run_adder(x, w, backend_name="portable").tolist()
        [[[-3.0, -2.0]]]
    """
    name = backend_name or backend()
    if get_backend(name).isa is None:
        raise RuntimeError(f"run_adder needs a compiled backend, not {name!r}")
    x = x.contiguous()
    wt = w.transpose(1, 2).contiguous()
    y = torch.empty(x.shape[0], x.shape[1], w.shape[1], dtype=torch.float32)
    args = adder_args(x, wt, y, p, threads or torch.get_num_threads(), isa_code(name))
    run_program([("adder", args)])
    return y
