"""The ABI is one list: the library's tables match Python's mirrors, and a mismatch is a clear load error."""
from __future__ import annotations

import ctypes

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sparsewino import native
from sparsewino.engine import kernels
from sparsewino.native import abi

from .conftest import COMPILED, needs_kernel


def _library_ops() -> list[tuple[str, int, str, int]]:
    rows = abi._read_table(kernels.library(), "sw_op_table", abi._OpInfo)
    return [(r.name.decode(), r.code, r.args_struct.decode(), r.struct_size) for r in rows]


@needs_kernel
def test_the_table_lists_every_operation_with_its_code_and_size():
    rows = _library_ops()
    assert {name: code for name, code, _, _ in rows} == kernels.OP_KINDS
    for name, _, c_struct, size in rows:
        op = next(op for op in kernels.OPERATIONS if op.name == name)
        assert (c_struct, size) == (op.c_struct, ctypes.sizeof(op.struct))
        assert getattr(kernels.library(), op.entry_point).restype is ctypes.c_int32
    assert "adder" in kernels.OP_KINDS and kernels.OP_KINDS["adder"] == 7


@needs_kernel
def test_the_library_agrees_on_constants_and_largest_tile():
    assert kernels.max_n() == kernels.MAX_N == 8
    assert (kernels.ELTWISE_ADD, kernels.ELTWISE_AFFINE, kernels.ELTWISE_RELU) == (0, 1, 2)
    assert (kernels.POOL_MAX, kernels.POOL_AVG) == (0, 1)
    abi.check_library(kernels.library())                      # no exception: all agree


def test_a_doctored_table_names_the_struct_and_the_fix():
    ours = [(op.name, op.code, op.c_struct, ctypes.sizeof(op.struct)) for op in abi.OPERATIONS]
    abi.compare_operations(ours)
    gemm = ctypes.sizeof(abi.SwGemmArgs)
    doctored = [(n, c, s, size + 8 if n == "gemm" else size) for n, c, s, size in ours]
    with pytest.raises(OSError, match=rf"struct sw_gemm_args is {gemm + 8} bytes in the library, "
                                      rf"{gemm} in Python: stale build or mismatched declaration; "
                                      r"reinstall with pip install -e \."):
        abi.compare_operations(doctored)
    with pytest.raises(OSError, match="operation pool2d has code 9"):
        abi.compare_operations([(n, 9 if n == "pool2d" else c, s, z) for n, c, s, z in ours])
    with pytest.raises(OSError, match="differ from Python"):
        abi.compare_operations(ours[:-1])
    with pytest.raises(OSError, match="struct sw_matrices is 4 bytes in the library"):
        abi.compare_structs([("sw_matrices", 4), ("sw_op", 16), ("sw_adder_grad_args", 80)])
    with pytest.raises(OSError, match="constant SW_MAX_N is 16 in the library, 8 in Python"):
        abi.compare_constants([(name, 16 if name == "SW_MAX_N" else value)
                               for name, value in abi.CONSTANTS.items()])


class _GemmWithExtraField(ctypes.Structure):
    _fields_ = [*abi.SwGemmArgs._fields_, ("extra", ctypes.c_int64)]


@needs_kernel
def test_a_mismatched_struct_makes_the_library_unavailable_not_a_crash(monkeypatch, fresh_native):
    doctored = tuple(abi.Operation(op.name, op.code, _GemmWithExtraField, op.c_struct)
                     if op.name == "gemm" else op for op in abi.OPERATIONS)
    monkeypatch.setattr(abi, "OPERATIONS", doctored)
    assert kernels.library() is None
    size = ctypes.sizeof(abi.SwGemmArgs)
    message = kernels.load_error()
    assert (f"struct sw_gemm_args is {size} bytes in the library, {size + 8} in Python: "
            "stale build or mismatched declaration; reinstall with pip install -e .") in message
    assert kernels.available_backends() == ["torch"]
    with pytest.warns(RuntimeWarning, match="sw_gemm_args"):
        assert kernels.backend() == "torch"


@needs_kernel
def test_a_mismatched_constant_makes_the_library_unavailable(monkeypatch, fresh_native):
    monkeypatch.setattr(abi, "CONSTANTS", {**abi.CONSTANTS, "SW_POOL_AVG": 5})
    assert native.library() is None
    assert "constant SW_POOL_AVG is 1 in the library, 5 in Python" in native.load_error()


@needs_kernel
def test_an_unknown_operation_code_is_refused_by_the_runner():
    lib = kernels.library()
    ops = (kernels.SwOp * 1)(kernels.SwOp(99, None))
    failed = ctypes.c_int32(-1)
    assert lib.sw_run_program(ops, 1, ctypes.byref(failed)) == -6 and failed.value == 0


def _adder_reference(x: torch.Tensor, w: torch.Tensor, p: float) -> torch.Tensor:
    """float64 ``-sum_j |x[b, a, j] - w[b, c, j]|^p``."""
    d = x.double()[:, :, None, :] - w.double()[:, None, :, :]
    return -(d.abs() ** p).sum(-1)


@needs_kernel
@pytest.mark.parametrize("name", COMPILED)
@given(B=st.integers(1, 3), A=st.integers(1, 13), C=st.integers(1, 21), J=st.integers(1, 19),
       p=st.sampled_from([1.0, 1.5, 2.0, 1.25]), seed=st.integers(0, 2**16))
def test_the_adder_operation_matches_float64(name, B, A, C, J, p, seed):
    torch.manual_seed(seed)
    x, w = torch.randn(B, A, J), torch.randn(B, C, J)
    y = kernels.run_adder(x, w, p, backend_name=name, threads=2)
    ref = _adder_reference(x, w, p)
    assert y.shape == (B, A, C) and torch.isfinite(y).all()
    scale = max(1.0, ref.abs().max().item())
    assert (y.double() - ref).abs().max().item() <= 2e-5 * scale


@needs_kernel
def test_the_adder_operation_refuses_bad_arguments():
    x, w = torch.randn(1, 2, 3), torch.randn(1, 2, 3)
    with pytest.raises(RuntimeError, match="invalid arguments"):
        kernels.run_adder(x, w, 2.5, backend_name=COMPILED[-1])
    with pytest.raises(RuntimeError, match="compiled backend"):
        kernels.run_adder(x, w, 1.0, backend_name="torch")


@needs_kernel
@pytest.mark.parametrize("name", COMPILED)
def test_adder_and_eltwise_run_as_one_program(name):
    """The adder operation composes with the others in one sw_run_program call: the product
    of (B, A, C), then a per-row affine map + ReLU (ELTWISE_AFFINE over channels = A), in place."""
    torch.manual_seed(0)
    x, w = torch.randn(2, 9, 13), torch.randn(2, 6, 13)
    wt, y = w.transpose(1, 2).contiguous(), torch.empty(2, 9, 6)
    scale, shift = torch.rand(9) + 0.5, torch.full((9,), 14.0)
    isa = kernels.isa_code(name)
    adder = kernels.adder_args(x, wt, y, 1.0, 2, isa)
    affine = kernels.SwEltwiseArgs(kind=kernels.ELTWISE_AFFINE, relu=1, outer=2, channels=9,
                                   inner=6, a=y.data_ptr(), scale=scale.data_ptr(),
                                   shift=shift.data_ptr(), y=y.data_ptr(), threads=2, isa=isa)
    kernels.run_program([("adder", adder), ("eltwise", affine)])
    ref = (_adder_reference(x, w, 1.0) * scale.double()[:, None] + shift.double()[:, None])
    ref = ref.clamp(min=0)
    assert 0 < (ref > 0).double().mean() < 1                   # the ReLU cuts some, not all
    assert (y.double() - ref).abs().max().item() <= 2e-5 * max(1.0, ref.abs().max().item())
    adder.p = 3.0                                              # refused: outside [1, 2]
    with pytest.raises(RuntimeError, match=r"program step 0 \(adder\).*invalid arguments"):
        kernels.run_program([("adder", adder), ("eltwise", affine)])
