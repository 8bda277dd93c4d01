"""bf16 products (``engine.compile(precision="bf16")``) on every backend against float64 references.

Exactness is tested where rounding cannot hide a bug: with bf16-representable Winograd weights
and small-integer inputs, F(2,3)'s transforms (entries 0 and +-1) give bf16-exact input tiles,
so the kernels must match the float64 reference as tightly as fp32 does. Larger tiles are
tested against the size of bf16's rounding. The AVX512-BF16 instructions, the software
equivalent (AVX2, AVX-512 without the extension) and the portable build must agree bit for bit.
"""
from __future__ import annotations

import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsewino import engine
from sparsewino.engine import SparseDecomposedConv2d, SparseLinear, SparseWinogradConv2d, SparseWinogradConv3d, kernels
from sparsewino.engine.packing import PackedMatrices, PrecisionRangeError, round_bf16
from sparsewino.nn import WinogradConv2d, WinogradConv3d

from .conftest import COMPILED, LANE_CASES, assert_matches, cpu_flags, needs_kernel, reference, sparse_layer


def _bf16_exact(layer: nn.Module) -> nn.Module:
    """The layer with its (Winograd-domain) weights and bias rounded to bf16."""
    with torch.no_grad():
        layer.weight.copy_(round_bf16(layer.weight))
    return layer


def _small_integers(*shape: int) -> torch.Tensor:
    return torch.randint(-3, 4, shape).float()


def _run(fast: nn.Module, x: torch.Tensor, backend: str, lanes: int = 0) -> torch.Tensor:
    fast.lanes = lanes
    with torch.no_grad(), engine.use_backend(backend):
        return fast(x)


@needs_kernel
@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 3), c=st.integers(1, 37), k=st.integers(1, 40),
       h=st.integers(1, 17), w=st.integers(1, 17), sparsity=st.sampled_from([0.0, 0.5, 0.9]),
       formats=st.sampled_from(["auto", "sparse", "dense", "blocked"]), mode=st.sampled_from([0, 1, 2]),
       winograd_relu=st.booleans(), case=st.sampled_from(LANE_CASES or [("avx2", 0)]),
       seed=st.integers(0, 2**16))
def test_conv2d_bf16_is_exact_when_the_tiles_are(batch, c, k, h, w, sparsity, formats, mode,
                                                 winograd_relu, case, seed):
    """Pairs of channels (odd C included), every format, thread mode and lane count."""
    backend, lanes = case
    layer = _bf16_exact(sparse_layer(c, k, tile=2, sparsity=sparsity, seed=seed,
                                     winograd_relu=winograd_relu))
    fast = SparseWinogradConv2d.from_layer(layer, formats=formats, precision="bf16")
    fast.kernel_mode = mode
    assert fast.packed.precision == "bf16" and fast.packed.columns == (c + 1) // 2
    x = _small_integers(batch, c, h, w)
    assert_matches(_run(fast, x, backend, lanes), reference(layer, x))


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_conv3d_bf16_is_exact_when_the_tiles_are(backend):
    torch.manual_seed(1)
    layer = _bf16_exact(WinogradConv3d(5, 7, 3, padding=1, tile=2, domain="winograd").eval())
    with torch.no_grad():
        layer.weight.mul_((torch.rand_like(layer.weight) > 0.5).float())
    fast = SparseWinogradConv3d.from_layer(layer, precision="bf16")
    x = _small_integers(2, 5, 5, 6, 7)
    with torch.no_grad():
        expected = copy.deepcopy(layer).double()(x.double())
    assert_matches(_run(fast, x, backend), expected)


@needs_kernel
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), c=st.integers(1, 70), k=st.integers(1, 60),
       density=st.sampled_from([0.05, 0.3, 0.7, 1.0]), formats=st.sampled_from(["auto", "sparse",
                                                                               "dense"]),
       mode=st.sampled_from([0, 1, 2]), seed=st.integers(0, 2**16))
def test_gemm_bf16_products_equal_on_every_backend(n, c, k, density, formats, mode, seed):
    """No transforms: bf16 weights; dense matrices round the inputs too (bf16 products), sparse
    ones multiply the fp32 inputs; fp32 accumulation. The dense products of the hardware
    (vdpbf16ps), the software equivalent (8 and 16 lanes) and the portable build are the same
    bits (each product is exact); the SIMD builds agree on sparse ones too."""
    torch.manual_seed(seed)
    fc = nn.Linear(c, k)
    with torch.no_grad():
        fc.weight.mul_((torch.rand_like(fc.weight) < density).float())
    fast = SparseLinear.from_linear(fc, formats=formats, precision="bf16", threads=2)
    fast.kernel_mode = mode                 # cooperative: one thread rounds the shared block
    dense = fast.format_counts()["dense"] == 1
    x = torch.randn(n, c)
    inputs = round_bf16(x) if dense else x
    expected = inputs.double() @ round_bf16(fc.weight).double().T + fc.bias.double()
    outputs = {f"{b}/{lanes}": _run(fast, x, b, lanes) for b, lanes in LANE_CASES}
    outputs["torch"] = _run(fast, x, "torch")
    for name, y in outputs.items():
        assert_matches(y, expected, tol=1e-5), name
    first = outputs[f"{COMPILED[0]}/0"]
    for name, y in outputs.items():
        if name != "torch" and (dense or not name.startswith("portable")):
            assert torch.equal(y, first), f"{name} differs from {COMPILED[0]}"


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_the_kernels_round_like_round_bf16(backend):
    """A 1 -> 1 layer of weight 1 makes each output the kernel's rounding of its input: to
    nearest even at ties, subnormals to zero, infinities kept, NaN stays NaN."""
    values = torch.tensor([
        1.0, 1 + 2**-8, 1 + 2**-9, 1 + 3 * 2**-9, -(1 + 3 * 2**-9), 1 + 2**-9 + 2**-20,
        3.3895e38, 3.4e38, -3.4e38, float("inf"), float("-inf"), float("nan"), 1e-39, -1e-39,
        1.2e-38, 0.0, -0.0, 123.456, -7.77e-5, 65504.0, 1 + 3 * 2**-8])
    fc = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        fc.weight.fill_(1.0)
    fast = SparseLinear.from_linear(fc, formats="dense", precision="bf16")   # bf16 products
    y = _run(fast, values.reshape(-1, 1), backend)[:, 0]
    expected = round_bf16(values)
    assert torch.isnan(y[11]) and torch.isnan(expected[11])
    keep = ~torch.isnan(expected)
    assert torch.equal(y[keep], expected[keep])
    # bf16 keeps 7 bits after the point: ties (1 + 2^-8, 1 + 3 * 2^-8) go to the even neighbour.
    assert expected[1] == 1.0 and expected[20] == 1 + 2**-6 and expected[3] == 1 + 2**-7
    assert expected[12] == 0 and torch.isinf(expected[7])


@needs_kernel
@pytest.mark.parametrize("tile, bound", [(2, 0.015), (4, 0.05), (6, 0.25)])
def test_larger_tiles_stay_within_bf16_rounding(tile, bound):
    """F(4,3) and F(6,3) tiles are not bf16-exact: the error is bf16's (2^-9 per value)
    amplified by the transforms, not more, and the kernel agrees with the PyTorch path."""
    layer = sparse_layer(32, 24, tile=tile, sparsity=0.5, seed=3)
    fast = SparseWinogradConv2d.from_layer(layer, precision="bf16")
    x = torch.randn(2, 32, 13, 11)
    expected = reference(layer, x)
    scale = expected.abs().max().item()
    torch_path = _run(fast, x, "torch")
    for backend in COMPILED:
        y = _run(fast, x, backend)
        error = (y.double() - expected).abs().max().item() / scale
        assert 1e-5 < error < bound, (backend, error)      # rounded, and not more than that
        assert (y - torch_path).abs().max().item() < bound * scale / 4


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_decomposed_layers_take_bf16(backend):
    torch.manual_seed(0)
    layer = WinogradConv2d(6, 10, 5, stride=2, padding=2).eval()
    fast = SparseDecomposedConv2d.from_layer(layer, precision="bf16")
    x = torch.randn(2, 6, 15, 14)
    expected = F.conv2d(x.double(), layer.weight.double(), layer.bias.double(), stride=2, padding=2)
    y = _run(fast, x, backend)
    error = (y.double() - expected).abs().max().item() / expected.abs().max().item()
    assert 1e-5 < error < 0.03
    assert (y - _run(fast, x, "torch")).abs().max().item() < 0.01 * expected.abs().max().item()


def test_packing_in_pairs_round_trips():
    torch.manual_seed(0)
    w = torch.randn(5, 9, 7)
    w[w.abs() < 1.0] = 0
    w[:, :, 6] = 0                                  # the last (unpaired) column empty
    for formats in ("sparse", "dense", "auto"):
        packed = PackedMatrices.pack(w, formats, "bf16")
        assert packed.columns == 4 and torch.equal(packed.dense(), round_bf16(w))
        again = PackedMatrices.from_state(packed.state())
        assert again.precision == "bf16" and torch.equal(again.dense(), packed.dense())
    def panel_bytes(packed: PackedMatrices) -> int:
        dense = packed.state()["dense"]
        return dense.numel() * dense.element_size()

    even = torch.randn(3, 9, 8)
    assert 2 * panel_bytes(PackedMatrices.pack(even, "dense", "bf16")) == \
        panel_bytes(PackedMatrices.pack(even, "dense"))
    # Sparse: one 2-byte weight per entry. Dense: pairs of channels, 2j in the low half.
    one = torch.zeros(1, 1, 4)
    one[0, 0, 1], one[0, 0, 2] = 2.0, -1.0
    state = PackedMatrices.pack(one, "sparse", "bf16").state()
    assert state["val"].dtype == torch.int16
    stored = [(int(c), int(v) & 0xFFFF) for c, v in zip(state["col"], state["val"]) if v]
    assert stored == [(1, 0x4000), (2, 0xBF80)]
    panel = PackedMatrices.pack(one, "dense", "bf16").state()["dense"][0, 0, :, 0]
    assert [int(v) & 0xFFFFFFFF for v in panel] == [0x4000 << 16, 0xBF80]
    with pytest.raises(PrecisionRangeError, match="bf16"):
        PackedMatrices.pack(torch.full((1, 2, 2), 3.4e38), precision="bf16")
    with pytest.raises(ValueError, match="precision"):
        PackedMatrices.pack(w, precision="int8")


@needs_kernel
def test_only_the_avx512_build_uses_the_instructions_and_only_where_the_cpu_has_them():
    has = "avx512_bf16" in cpu_flags()
    for name in kernels.available_backends():
        assert kernels.bf16_hardware(name) == (name == "avx512" and has), name


def test_compile_precision_errors_warnings_and_report(caplog):
    net = nn.Sequential(sparse_layer(3, 8, sparsity=0.5), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 6 * 6, 4)).eval()
    with pytest.raises(ValueError, match="precision must be one of"):
        engine.compile(net, precision="fp8")
    with pytest.raises(ValueError, match="weights='fp32'"):
        engine.compile(net, precision="bf16", weights="fp16")
    with engine.use_backend("torch"), caplog.at_level(logging.WARNING):
        fast = engine.compile(net, precision="bf16")
    assert "without AVX512-BF16" in caplog.text
    report = str(fast.compile_report)
    assert "bf16 weights and products" in report and "bf16 rounding" in report
    assert fast[0].packed.precision == "bf16" and fast[3].packed.precision == "bf16"
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        y, ref = fast(x), net(x)
    error = float((y - ref).abs().max() / ref.abs().max())
    assert 1e-5 < error < 0.05
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        engine.compile(net)                             # fp32: no warning, no note
    assert "bf16" not in caplog.text


def test_compile_keeps_bf16_only_where_its_error_is_about_openvinos():
    """Dense F(2,3) stays bf16; F(4,3) amplifies bf16's rounding beyond BF16_MAX_ERROR and takes
    fp16 weights; F(6,3) amplifies even fp16's and stays fp32. The report says why."""
    from sparsewino.engine.compile import BF16_MAX_ERROR

    expected = {2: "bf16", 4: "fp16", 6: "fp32"}
    for tile, precision in expected.items():
        torch.manual_seed(0)
        conv = nn.Conv2d(64, 64, 3, padding=1).eval()
        net = nn.Sequential(WinogradConv2d.from_conv(conv, tile=tile)).eval()
        fast = engine.compile(net, precision="bf16")
        assert fast[0].packed.precision == precision, tile
        detail = next(e.detail for e in fast.compile_report if e.compiled)
        assert ("bf16 would round the output by" in detail) == (tile != 2), detail
        x = torch.randn(1, 64, 12, 12)
        with torch.no_grad():
            error = float((fast(x) - net(x)).abs().max() / net(x).abs().max())
        assert error < 2 * BF16_MAX_ERROR, (tile, error)
