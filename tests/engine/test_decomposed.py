"""Compiled DWM layers (kernels above 3 taps, strides above 1) on every backend vs float64, in models."""
from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from sparsewino import engine
from sparsewino.engine import SparseDecomposedConv2d
from sparsewino.engine.program import profile
from sparsewino.models import MODELS
from sparsewino.nn import WinogradConv2d, convert

from .conftest import COMPILED, assert_matches, compile_and_compare, needs_kernel, randomize_batchnorm


def decomposed_layer(c, k, kernel, stride, padding, piece, tile, *, groups=1, sparsity=0.0,
                     domain="winograd", winograd_relu=False, seed=0):
    torch.manual_seed(seed)
    layer = WinogradConv2d(c, k, kernel, stride=stride, padding=padding, groups=groups,
                           tile=tile, decompose=(piece, piece), domain=domain,
                           winograd_relu=winograd_relu)
    if sparsity and domain == "winograd":
        with torch.no_grad():
            layer.weight.mul_((torch.rand_like(layer.weight) >= sparsity).float())
    return layer.eval()


def reference(layer, x):
    """float64: conv2d with the spatial weights, or the float64 layer (Winograd domain, ReLU)."""
    if layer.domain == "spatial" and not layer.winograd_relu:
        bias = layer.bias.double() if layer.bias is not None else None
        return F.conv2d(x.double(), layer.weight.double(), bias, stride=layer.stride,
                        padding=layer.padding, groups=layer.groups)
    with torch.no_grad():
        return copy.deepcopy(layer).double()(x.double())


@needs_kernel
@settings(max_examples=40)
@given(kernel=st.integers(2, 11), data=st.data(), batch=st.integers(1, 2),
       c=st.integers(1, 12), k=st.integers(1, 30), groups=st.sampled_from([1, 1, 2]),
       sparsity=st.sampled_from([0.0, 0.6, 0.95]), formats=st.sampled_from(["auto", "sparse", "dense", "blocked"]),
       threads=st.integers(1, 2), relu=st.booleans(), residual=st.booleans(),
       winograd_relu=st.sampled_from([False, False, True]), domain=st.sampled_from(["spatial", "winograd"]),
       backend=st.sampled_from(COMPILED or ["avx2"]), seed=st.integers(0, 2 ** 16))
def test_random_decomposed_layers_match_float64(kernel, data, batch, c, k, groups, sparsity, formats,
                                                threads, relu, residual, winograd_relu, domain,
                                                backend, seed):
    stride = data.draw(st.integers(1, min(4, kernel)))
    phase = -(-kernel // stride)
    assume(phase >= 2)
    piece = data.draw(st.integers(2, min(3, phase)))
    assume(stride > 1 or piece < kernel)
    tile = data.draw(st.integers(2, 9 - piece))
    padding = data.draw(st.integers(0, 3))
    h = data.draw(st.integers(max(1, kernel - 2 * padding), kernel + 12))
    w = data.draw(st.integers(max(1, kernel - 2 * padding), kernel + 12))
    c, k = c * groups, k * groups
    layer = decomposed_layer(c, k, kernel, stride, padding, piece, tile, groups=groups,
                             sparsity=sparsity, domain=domain, winograd_relu=winograd_relu, seed=seed)
    layouts = ["stacked", "pieces"]
    x = torch.randn(batch, c, h, w)
    ref = reference(layer, x)
    extra = torch.randn(ref.shape) if residual else None
    if residual:
        ref = ref + extra.double()
    if relu:
        ref = torch.relu(ref)
    for layout in layouts:
        fast = SparseDecomposedConv2d.from_layer(layer, threads=threads, formats=formats,
                                                 relu_output=relu, residual=residual, layout=layout)
        with torch.no_grad(), engine.use_backend(backend):
            got = fast._forward_kernel(x, backend, extra, poison=True)
        assert_matches(got, ref, tol=5e-5)


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("kernel,stride,padding,tile", [
    (7, 2, 3, 4), (3, 2, 1, 4), (3, 2, 1, 6), (5, 1, 2, 4), (5, 2, 2, 4), (9, 1, 4, 4),
    (5, 1, 0, 4), (11, 4, 2, 4), (4, 2, 1, 4)])
def test_resnet_and_other_shapes_in_both_layouts(backend, kernel, stride, padding, tile):
    """The auto-chosen pieces of common layers, spatial weights, the default layout and
    (where possible) the other one; BatchNorm folded with scale/shift."""
    torch.manual_seed(kernel)
    layer = WinogradConv2d(5, 9, kernel, stride=stride, padding=padding, tile=tile).eval()
    x = torch.randn(2, 5, 23, 18)
    scale, shift = torch.rand(9) + 0.5, torch.randn(9)
    ref = reference(layer, x) * scale.double().reshape(1, -1, 1, 1) + shift.double().reshape(1, -1, 1, 1)
    for layout in ("stacked", "pieces"):
        fast = SparseDecomposedConv2d.from_layer(layer, scale=scale, shift=shift, layout=layout)
        with torch.no_grad(), engine.use_backend(backend):
            assert_matches(fast(x), ref, tol=5e-5)
        with torch.no_grad(), engine.use_backend("torch"):
            assert_matches(fast(x), ref, tol=5e-5)
        assert fast.spec.layout == layout


def test_layouts_and_descriptions():
    stem = WinogradConv2d(3, 8, 7, stride=2, padding=3).eval()
    assert SparseDecomposedConv2d.choose_layout(stem.decomposition, 3, 6) == "stacked"
    wide = WinogradConv2d(128, 8, 5, padding=2, tile=4).eval()      # 36 x 128 x 4 > 16384
    assert SparseDecomposedConv2d.choose_layout(wide.decomposition, 128, 6) == "pieces"
    assert SparseDecomposedConv2d.from_layer(wide).spec.layout == "pieces"
    wide_strided = WinogradConv2d(256, 8, 3, stride=2, padding=1, tile=4).eval()   # 25 x 256 x 4
    assert SparseDecomposedConv2d.choose_layout(wide_strided.decomposition, 256, 5) == "stacked"
    wide_valid = WinogradConv2d(128, 8, 5, padding=0, tile=4).eval()    # a piece reads at +2
    assert SparseDecomposedConv2d.choose_layout(wide_valid.decomposition, 128, 6) == "stacked"
    with pytest.raises(ValueError, match="layout must be"):
        SparseDecomposedConv2d.from_layer(stem, layout="tiled")
    # pieces read the input in place where they can, else their own copy of their sub-image
    same5 = WinogradConv2d(4, 4, 5, padding=2, tile=4).eval()
    kinds = [p.kind for p in SparseDecomposedConv2d.from_layer(same5, layout="pieces").lower(1, 9, 9, 1, "portable")]
    assert kinds == ["conv2d"] * 4
    valid5 = WinogradConv2d(4, 4, 5, padding=0, tile=4).eval()        # a piece reads at +2
    kinds = [p.kind for p in SparseDecomposedConv2d.from_layer(valid5, layout="pieces").lower(1, 9, 9, 1, "portable")]
    assert kinds.count("extract") == 3 and kinds.count("conv2d") == 4
    relu = WinogradConv2d(4, 4, 5, padding=2, tile=4, winograd_relu=True).eval()
    kinds = [p.kind for p in SparseDecomposedConv2d.from_layer(relu, layout="pieces").lower(1, 9, 9, 1, "portable")]
    assert kinds == ["conv2d"] * 4                                  # in place too
    fast = SparseDecomposedConv2d.from_layer(same5, layout="pieces")
    assert "DWM 4 pieces 3x3 of F(4,3), pieces" in repr(fast)
    q = same5.to_winograd().weight.detach()
    torch.testing.assert_close(fast.winograd_weight(), q)
    torch.testing.assert_close(SparseDecomposedConv2d.from_layer(same5).winograd_weight(), q)
    grouped = WinogradConv2d(4, 6, 3, stride=2, padding=1, groups=2).eval()
    for layout in ("stacked", "pieces"):
        torch.testing.assert_close(SparseDecomposedConv2d.from_layer(grouped, layout=layout).winograd_weight(),
                                   grouped.winograd_weight().detach())


def test_unsupported_pieces_fall_back_with_a_reason():
    net = nn.Sequential(WinogradConv2d(3, 4, 2, stride=2), nn.ReLU(),        # pieces of one tap
                        WinogradConv2d(4, 4, 7, stride=2, padding=3, tile=7, decompose="dwm"))
    fast = engine.compile(net.eval())
    fallbacks = fast.compile_report.fallbacks
    assert "DWM pieces F(4,1)" in fallbacks["0"] and "r >= 2" in fallbacks["0"]
    assert "2 <= n <= 8" in fallbacks["2"]                             # F(7,3): n = 9
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x))


def small_strided_net(seed=0):
    """A stem 7x7/2 + BN + ReLU + max-pool, a ResNet block with a stride-2 3x3 and a 1x1
    shortcut, a 5x5 layer, a pruned Winograd-domain stride-2 layer and a classifier."""
    torch.manual_seed(seed)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.branch = nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1, bias=False),
                                        nn.BatchNorm2d(12), nn.ReLU(),
                                        nn.Conv2d(12, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12))
            self.down = nn.Sequential(nn.Conv2d(8, 12, 1, stride=2, bias=False), nn.BatchNorm2d(12))

        def forward(self, x):
            return torch.relu(self.branch(x) + self.down(x))

    net = nn.Sequential(nn.Conv2d(3, 8, 7, stride=2, padding=3), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.MaxPool2d(3, 2, 1), Block(), nn.Conv2d(12, 12, 5, padding=2), nn.ReLU(),
                        nn.Conv2d(12, 16, 3, stride=2, padding=1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    randomize_batchnorm(net)
    net, _ = convert(net.eval(), tile=4)
    net[7] = net[7].to_winograd()
    with torch.no_grad():
        net[7].weight.mul_((torch.rand_like(net[7].weight) > 0.7).float())
    return net.eval()


@pytest.mark.parametrize("backend", COMPILED + ["torch"])
def test_model_with_decomposed_layers_runs_as_one_program(backend):
    net = small_strided_net()
    x = torch.randn(2, 3, 37, 30)
    fast = compile_and_compare(net, x, backend)
    report = fast.compile_report
    assert sorted(report.compiled) == ["0", "10", "4.branch.0", "4.branch.3", "4.down.0", "5", "7"]
    kinds = {d.name: d.detail for d in report}
    assert "DWM stride 2x2" in kinds["0"] and "stacked" in kinds["0"] and "stacked" in kinds["5"]
    assert {d.name: d.fused for d in report}["0"] == ("1", "2")
    assert not report.fallbacks
    if backend != "torch":
        with engine.use_backend(backend):
            program = fast.program(x)
            rows = profile(program, x, repeats=2)
            alone = profile(program, x, repeats=2, mode="alone")
        assert program.torch_nodes == [] and len(program.steps) == 1
        names = [name for name, _, _ in rows]
        assert ("0", "extract") in [(n, k) for n, k, _ in rows] and names.count("5") == 2
        assert all(ms > 0 for _, _, ms in rows + alone)
        assert [row[:2] for row in alone] == [row[:2] for row in rows]


@needs_kernel
def test_resnet18_imagenet_layout_compiles_every_convolution():
    """ResNet-18 (ImageNet layout, 224x224): the 7x7/2 stem and the stride-2 3x3 convs run
    decomposed in the engine; no convolution is left to PyTorch (1x1 shortcuts are GEMMs)."""
    torch.manual_seed(0)
    model = MODELS.lookup("resnet18").builder(num_classes=10, width=8).eval()
    convert(model, tile=4)
    fast = engine.compile(model)
    report = fast.compile_report
    assert not report.fallbacks and "17 of 17 Winograd layers compiled, 4 GEMM layers" in str(report)
    decomposed = [d.name for d in report if d.detail.startswith("DWM")]
    assert decomposed == ["conv1", "layer2.0.branch.conv1", "layer3.0.branch.conv1",
                          "layer4.0.branch.conv1"]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert_matches(fast(x), model(x).double(), tol=1e-4)
    if COMPILED:
        with engine.use_backend(COMPILED[0]):
            assert fast.program(x).torch_nodes == []


def test_state_copies_and_errors():
    layer = WinogradConv2d(4, 6, 5, stride=2, padding=2).eval()
    fast = SparseDecomposedConv2d.from_layer(layer, residual=True)
    x, extra = torch.randn(1, 4, 11, 11), torch.randn(1, 6, 6, 6)
    with torch.no_grad():
        y = fast(x, extra)
        for other in (copy.deepcopy(fast), pickle.loads(pickle.dumps(fast))):
            torch.testing.assert_close(other(x, extra), y)
        buffer = io.BytesIO()
        torch.save(fast.state_dict(), buffer)
        buffer.seek(0)
        again = SparseDecomposedConv2d.from_layer(WinogradConv2d(4, 6, 5, stride=2, padding=2).eval(),
                                                  residual=True)
        again.load_state_dict(torch.load(buffer))
        torch.testing.assert_close(again(x, extra), y)
        torch.testing.assert_close(fast(x[0], extra[0]), y[0])                  # unbatched
    other = SparseDecomposedConv2d.from_layer(WinogradConv2d(4, 6, 5, stride=1, padding=2).eval())
    with pytest.raises(ValueError, match="different configuration"):
        other.load_state_dict(fast.state_dict())
    with pytest.raises(TypeError, match="with a fused residual"):
        fast(x)
    with pytest.raises(ValueError, match="expects 4 input channels"):
        fast(torch.randn(1, 3, 11, 11), extra)
    with pytest.raises(ValueError, match="too small"):
        SparseDecomposedConv2d.from_layer(WinogradConv2d(4, 6, 5, stride=2).eval())(
            torch.randn(1, 4, 3, 3))
    with pytest.raises(RuntimeError, match="inference-only"):
        fast.train()(x, extra)
    with pytest.raises(ValueError, match="cannot compile"):
        SparseDecomposedConv2d.from_layer(WinogradConv2d(4, 6, 3, padding=1))


def test_count_of_compiled_decomposed_layers():
    layer = WinogradConv2d(4, 6, 7, stride=2, padding=3).eval()
    net = nn.Sequential(layer)
    fast = engine.compile(net)
    shape = (1, 4, 32, 32)
    plain, compiled = engine.count(net, shape), engine.count(fast, shape)
    assert plain.total == compiled.total
    assert plain.layers[0].algorithm == "DWM stride 2x2: 9 pieces 3x3 of F(4x4,3x3)"


@needs_kernel
@pytest.mark.parametrize("kernel,stride,padding", [(5, 1, 2), (3, 2, 1)])
def test_fp16_weights_in_both_layouts(kernel, stride, padding):
    """Half-precision packing: the pieces layout's per-piece views of the packing keep the
    fp16 flag; results within fp16 weight rounding of the float64 reference."""
    torch.manual_seed(0)
    layer = WinogradConv2d(6, 10, kernel, stride=stride, padding=padding).eval()
    x = torch.randn(2, 6, 15, 13)
    ref = reference(layer, x)
    for layout in ("stacked", "pieces"):
        fast = SparseDecomposedConv2d.from_layer(layer, layout=layout, precision="fp16")
        assert fast.packed.precision == "fp16"
        with torch.no_grad():
            assert_matches(fast(x), ref, tol=3e-3)
