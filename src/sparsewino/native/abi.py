"""The C library's ABI in Python: ctypes mirrors of its structs, one list of operations, constants.

Everything here mirrors ``sw_kernels.h`` and is checked against the library when it loads
(:func:`check_library`): each operation's name, code and args struct size
(``sw_op_table``), the size of every struct (``sw_struct_table``) and the value of every
constant (``sw_constant_table``). A mismatch (a stale build, a struct edited on one side only)
makes the library unavailable with a message saying which struct differs, never a crash.

Adding an operation: one ``X(...)`` line in ``SW_OPERATIONS`` (``sw_kernels.h``), its args
struct there and its ctypes mirror here, one :class:`Operation` in :data:`OPERATIONS`, and its
``sw_<name>_forward`` in ``sw_api.cpp``.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

__all__ = ["ABI_VERSION", "Operation", "OPERATIONS", "OP_KINDS", "SHARED_STRUCTS", "CONSTANTS",
           "SwMatrices", "SwConv2dArgs", "SwConv3dArgs", "SwGemmArgs", "SwPool2dArgs",
           "SwEltwiseArgs", "SwExtractArgs", "SwAdderArgs", "SwAdderGradArgs", "SwOp",
           "DENSE_ROWS", "SLICE_ROWS", "BLOCK_ROWS", "CHUNK_ROWS", "MAX_N", "MAX_COLUMNS",
           "ISA_AUTO", "ISA_PORTABLE", "ISA_AVX2", "ISA_AVX512",
           "MODE_AUTO", "MODE_BLOCKS", "MODE_COOPERATIVE", "POOL_MAX", "POOL_AVG",
           "ELTWISE_ADD", "ELTWISE_AFFINE", "ELTWISE_COPY", "ELTWISE_RELU",
           "ADDER_GRAD_HARDTANH", "ADDER_GRAD_EXACT", "PRECISION_FP32", "PRECISION_FP16",
           "PRECISION_BF16", "check_library", "compare_operations",
           "compare_structs", "compare_constants", "declare_functions"]

ABI_VERSION = 10                     # SW_ABI_VERSION: bump both together on any ABI change

DENSE_ROWS = 6                       # SW_DENSE_ROWS: rows per dense weight panel
SLICE_ROWS = 4                       # SW_SLICE_ROWS: rows per sparse (SELL) slice
BLOCK_ROWS = 8                       # SW_BLOCK_ROWS: output channels per block (blocked)
CHUNK_ROWS = 24                      # SW_CHUNK_ROWS: output channels per work chunk
MAX_N = 8                            # SW_MAX_N: largest Winograd input tile n
MAX_COLUMNS = 65536                  # SW_MAX_COLUMNS: 16-bit sparse column indices
ISA_AUTO, ISA_PORTABLE, ISA_AVX2, ISA_AVX512 = 0, 1, 2, 3             # enum sw_isa
MODE_AUTO, MODE_BLOCKS, MODE_COOPERATIVE = 0, 1, 2                   # enum sw_mode
POOL_MAX, POOL_AVG = 0, 1                                            # enum sw_pool_kind
ELTWISE_ADD, ELTWISE_AFFINE, ELTWISE_COPY = 0, 1, 2                  # enum sw_eltwise_kind
#: A standalone ReLU is the copy kind with ``relu = 1``.
ELTWISE_RELU = ELTWISE_COPY
ADDER_GRAD_HARDTANH, ADDER_GRAD_EXACT = 0, 1                         # enum sw_adder_grad_mode
PRECISION_FP32, PRECISION_FP16, PRECISION_BF16 = 0, 1, 2             # enum sw_precision

#: C name -> Python value of every constant of ``SW_CONSTANTS``.
CONSTANTS: dict[str, int] = {
    "SW_DENSE_ROWS": DENSE_ROWS, "SW_SLICE_ROWS": SLICE_ROWS, "SW_BLOCK_ROWS": BLOCK_ROWS,
    "SW_CHUNK_ROWS": CHUNK_ROWS,
    "SW_MAX_N": MAX_N, "SW_MAX_COLUMNS": MAX_COLUMNS,
    "SW_ISA_AUTO": ISA_AUTO, "SW_ISA_PORTABLE": ISA_PORTABLE, "SW_ISA_AVX2": ISA_AVX2,
    "SW_ISA_AVX512": ISA_AVX512,
    "SW_MODE_AUTO": MODE_AUTO, "SW_MODE_BLOCKS": MODE_BLOCKS,
    "SW_MODE_COOPERATIVE": MODE_COOPERATIVE,
    "SW_POOL_MAX": POOL_MAX, "SW_POOL_AVG": POOL_AVG,
    "SW_ELT_ADD": ELTWISE_ADD, "SW_ELT_AFFINE": ELTWISE_AFFINE, "SW_ELT_COPY": ELTWISE_COPY,
    "SW_ADDER_GRAD_HARDTANH": ADDER_GRAD_HARDTANH, "SW_ADDER_GRAD_EXACT": ADDER_GRAD_EXACT,
    "SW_PRECISION_FP32": PRECISION_FP32, "SW_PRECISION_FP16": PRECISION_FP16,
    "SW_PRECISION_BF16": PRECISION_BF16,
}

_i32, _i64, _f32, _ptr = ctypes.c_int32, ctypes.c_int64, ctypes.c_float, ctypes.c_void_p


class SwMatrices(ctypes.Structure):
    """Mirror of ``struct sw_matrices`` (pointers as addresses)."""

    _fields_ = [("P", _i32), ("K", _i32), ("C", _i32), ("formats", _ptr), ("slice_ptr", _ptr),
                ("slice_rows", _ptr), ("col", _ptr), ("val", _ptr), ("dense_index", _ptr),
                ("dense", _ptr), ("precision", _i32), ("block_ptr", _ptr), ("block_col", _ptr),
                ("block_val", _ptr)]


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


class SwAdderArgs(ctypes.Structure):
    """Mirror of ``struct sw_adder_args``: ``y[b, a, c] = -sum_j |x[b, a, j] - wt[b, j, c]|^p``."""

    _fields_ = [("B", _i64), ("A", _i64), ("C", _i64), ("J", _i64), ("x", _ptr), ("wt", _ptr),
                ("y", _ptr), ("p", _f32), ("threads", _i32), ("isa", _i32)]


class SwAdderGradArgs(ctypes.Structure):
    """Mirror of ``struct sw_adder_grad_args`` (the adder product's gradient with respect to x)."""

    _fields_ = [("B", _i64), ("A", _i64), ("C", _i64), ("J", _i64), ("grad_y", _ptr),
                ("w", _ptr), ("x", _ptr), ("grad_x", _ptr), ("p", _f32), ("mode", _i32),
                ("threads", _i32), ("isa", _i32)]


class SwOp(ctypes.Structure):
    """Mirror of ``struct sw_op``: one step of a program."""

    _fields_ = [("kind", _i32), ("args", _ptr)]


@dataclass(frozen=True)
class Operation:
    """One operation of ``SW_OPERATIONS``: its name, code and args struct (ctypes mirror)."""

    name: str
    code: int
    struct: type[ctypes.Structure]
    c_struct: str

    @property
    def entry_point(self) -> str:
        """The exported function that runs one such operation."""
        return f"sw_{self.name}_forward"


#: The operations, in the order (and with the codes) of ``SW_OPERATIONS`` in sw_kernels.h.
OPERATIONS: tuple[Operation, ...] = (
    Operation("conv2d", 1, SwConv2dArgs, "sw_conv2d_args"),
    Operation("gemm", 2, SwGemmArgs, "sw_gemm_args"),
    Operation("pool2d", 3, SwPool2dArgs, "sw_pool2d_args"),
    Operation("eltwise", 4, SwEltwiseArgs, "sw_eltwise_args"),
    Operation("conv3d", 5, SwConv3dArgs, "sw_conv3d_args"),
    Operation("extract", 6, SwExtractArgs, "sw_extract_args"),
    Operation("adder", 7, SwAdderArgs, "sw_adder_args"),
)
#: Operation name -> code (``sw_op.kind``).
OP_KINDS: dict[str, int] = {op.name: op.code for op in OPERATIONS}
#: C name -> ctypes mirror of the structs that are not one operation's args (``SW_SHARED_STRUCTS``).
SHARED_STRUCTS: dict[str, type[ctypes.Structure]] = {
    "sw_matrices": SwMatrices, "sw_op": SwOp, "sw_adder_grad_args": SwAdderGradArgs}

_REINSTALL = "stale build or mismatched declaration; reinstall with pip install -e ."


class _OpInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("args_struct", ctypes.c_char_p), ("code", _i32),
                ("struct_size", _i32)]


class _StructInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("size", _i32)]


class _ConstantInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", _i64)]


def _read_table(lib: ctypes.CDLL, symbol: str, entry: type[ctypes.Structure]) -> list:
    function = getattr(lib, symbol)
    function.restype = ctypes.POINTER(entry)
    function.argtypes = [ctypes.POINTER(_i32)]
    count = _i32()
    rows = function(ctypes.byref(count))
    return [rows[i] for i in range(count.value)]


def compare_operations(library_ops: list[tuple[str, int, str, int]],
                       operations: tuple[Operation, ...] = OPERATIONS) -> None:
    """Check the library's ``(name, code, args struct, size)`` rows against ``operations``.

    Raises:
        OSError: an operation is missing on either side, or differs in code or struct size.
    """
    ours = {op.name: op for op in operations}
    theirs = {row[0]: row for row in library_ops}
    if set(ours) != set(theirs):
        raise OSError(f"the library's operations {sorted(theirs)} differ from Python's "
                      f"{sorted(ours)}: {_REINSTALL}")
    for name, code, c_struct, size in library_ops:
        op = ours[name]
        if code != op.code:
            raise OSError(f"operation {name} has code {code} in the library, {op.code} in "
                          f"Python: {_REINSTALL}")
        _compare_size(c_struct, size, op.struct)


def compare_structs(library_structs: list[tuple[str, int]],
                    structs: dict[str, type[ctypes.Structure]] | None = None) -> None:
    """Check the sizes of the shared structs (``sw_matrices``, ``sw_op``, ...).

    Raises:
        OSError: a struct is missing in the library or has another size.
    """
    structs = SHARED_STRUCTS if structs is None else structs
    sizes = dict(library_structs)
    for name, struct in structs.items():
        if name not in sizes:
            raise OSError(f"struct {name} is not in the library's table: {_REINSTALL}")
        _compare_size(name, sizes[name], struct)


def compare_constants(library_constants: list[tuple[str, int]],
                      constants: dict[str, int] | None = None) -> None:
    """Check every constant Python uses against the library's value.

    Raises:
        OSError: a constant is missing in the library or has another value.
    """
    constants = CONSTANTS if constants is None else constants
    values = dict(library_constants)
    for name, value in constants.items():
        if values.get(name) != value:
            raise OSError(f"constant {name} is {values.get(name)} in the library, {value} in "
                          f"Python: {_REINSTALL}")


def _compare_size(c_struct: str, size: int, struct: type[ctypes.Structure]) -> None:
    if ctypes.sizeof(struct) != size:
        raise OSError(f"struct {c_struct} is {size} bytes in the library, "
                      f"{ctypes.sizeof(struct)} in Python: {_REINSTALL}")


def check_library(lib: ctypes.CDLL) -> None:
    """Compare the library's operation, struct and constant tables with this module's.

    Reads the module's current :data:`OPERATIONS`, :data:`SHARED_STRUCTS` and :data:`CONSTANTS`
    (tests replace them to check the error path).

    Raises:
        OSError: the first mismatch, naming the struct or constant.
    """
    ops = [(row.name.decode(), row.code, row.args_struct.decode(), row.struct_size)
           for row in _read_table(lib, "sw_op_table", _OpInfo)]
    compare_operations(ops, OPERATIONS)
    compare_structs([(row.name.decode(), row.size)
                     for row in _read_table(lib, "sw_struct_table", _StructInfo)], SHARED_STRUCTS)
    compare_constants([(row.name.decode(), row.value)
                       for row in _read_table(lib, "sw_constant_table", _ConstantInfo)], CONSTANTS)


def declare_functions(lib: ctypes.CDLL) -> None:
    """Argument and result types of every exported function."""
    for name in ("sw_abi_version", "sw_dense_rows", "sw_slice_rows", "sw_chunk_rows",
                 "sw_max_n"):
        getattr(lib, name).restype = _i32
    for name in ("sw_isa_supported", "sw_isa_compiled", "sw_isa_lanes", "sw_isa_bf16_hardware"):
        getattr(lib, name).restype = _i32
        getattr(lib, name).argtypes = [_i32]
    for op in OPERATIONS:
        getattr(lib, op.entry_point).restype = _i32
        getattr(lib, op.entry_point).argtypes = [ctypes.POINTER(op.struct)]
    for name, struct in (("sw_conv2d", SwConv2dArgs), ("sw_gemm", SwGemmArgs),
                         ("sw_conv3d", SwConv3dArgs)):
        getattr(lib, f"{name}_workspace").restype = _i32
        getattr(lib, f"{name}_workspace").argtypes = [ctypes.POINTER(struct),
                                                      ctypes.POINTER(_i64)]
    for name, struct in (("sw_conv2d_plan", SwConv2dArgs), ("sw_conv3d_plan", SwConv3dArgs)):
        getattr(lib, name).restype = _i32
        getattr(lib, name).argtypes = [ctypes.POINTER(struct)] + [ctypes.POINTER(_i32)] * 4
    lib.sw_adder_backward.restype = _i32
    lib.sw_adder_backward.argtypes = [ctypes.POINTER(SwAdderGradArgs)]
    lib.sw_run_program.restype = _i32
    lib.sw_run_program.argtypes = [ctypes.POINTER(SwOp), _i32, ctypes.POINTER(_i32)]
    lib.sw_run_program_timed.restype = _i32
    lib.sw_run_program_timed.argtypes = [ctypes.POINTER(SwOp), _i32, ctypes.POINTER(_i32),
                                         ctypes.POINTER(ctypes.c_double)]
