"""AdderConv2d and its adder-product kernels vs float64 references built from ``unfold``."""
import os

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from sparsewino import native
from sparsewino.native import backends as native_backends
from sparsewino.native.abi import SwAdderArgs
from sparsewino.nn import AdderConv2d, adder_kernels
from sparsewino.nn.adder import AdderProduct

BACKENDS = adder_kernels.available_backends()
COMPILED = [b for b in BACKENDS if b != "torch"]
if not COMPILED and os.environ.get("CI"):
    raise RuntimeError(f"CI: the adder kernels are missing ({adder_kernels.load_error()}); fix the "
                       "C++ build")


def reference_adder(x, weight, stride, padding, p):
    """float64 -sum |patch - w|^p from unfold (differentiable: exact gradients)."""
    n, _, h, w = x.shape
    k, _, kh, kw = weight.shape
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)          # (N, J, L)
    d = cols.transpose(1, 2)[:, :, None, :] - weight.reshape(1, 1, k, -1)  # (N, L, K, J)
    y = -(d.abs() ** p).sum(-1)
    ho = (h + 2 * padding[0] - kh) // stride[0] + 1
    wo = (w + 2 * padding[1] - kw) // stride[1] + 1
    return y.transpose(1, 2).reshape(n, k, ho, wo)


def addernet_gradients(x, weight, grad_out, stride, padding):
    """AdderNet's rules in float64: dW = sum G (X - W), dX = fold(sum G HardTanh(W - X))."""
    k = weight.shape[0]
    cols = F.unfold(x, weight.shape[2:], padding=padding, stride=stride).transpose(1, 2)  # (N, L, J)
    g = grad_out.reshape(x.shape[0], k, -1).transpose(1, 2)                 # (N, L, K)
    w = weight.reshape(k, -1)
    d_w = torch.einsum("nlk,nlj->kj", g, cols) - g.sum((0, 1))[:, None] * w
    d_cols = torch.einsum("nlk,nlkj->nlj", g, (w[None, None] - cols[:, :, None]).clamp(-1, 1))
    d_x = F.fold(d_cols.transpose(1, 2), x.shape[2:], weight.shape[2:], padding=padding, stride=stride)
    return d_x, d_w.reshape(weight.shape)


@st.composite
def adder_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    h = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 9))
    w = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 9))
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 5)), k=draw(st.integers(1, 19)),
                h=h, w=w, kernel=kernel, stride=stride, padding=padding,
                p=draw(st.sampled_from([1.0, 2.0, 1.5, 1.25])))


def assert_close_scaled(a, ref, tol=2e-5):
    assert a.shape == ref.shape
    assert torch.isfinite(a).all()
    scale = max(1.0, ref.abs().max().item())
    assert (a.double() - ref).abs().max().item() <= tol * scale


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=adder_cases(), seed=st.integers(0, 2**16))
def test_forward_and_backward_match_unfold_reference(backend, case, seed):
    torch.manual_seed(seed)
    layer = AdderConv2d(case["c"], case["k"], case["kernel"], stride=case["stride"],
                        padding=case["padding"], p=case["p"], grad="exact", eta=None)
    x = torch.randn(case["n"], case["c"], case["h"], case["w"], requires_grad=True)
    with adder_kernels.use_backend(backend):
        y = layer(x)
        grad_out = torch.randn_like(y)
        y.backward(grad_out)
    x64 = x.detach().double().requires_grad_()
    w64 = layer.weight.detach().double().requires_grad_()
    ref = reference_adder(x64, w64, case["stride"], case["padding"], case["p"])
    ref.backward(grad_out.double())
    assert_close_scaled(y, ref)
    assert_close_scaled(x.grad, x64.grad, 5e-5)
    assert_close_scaled(layer.weight.grad, w64.grad, 5e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=adder_cases(), seed=st.integers(0, 2**16))
def test_addernet_rule_gradients(backend, case, seed):
    torch.manual_seed(seed)
    layer = AdderConv2d(case["c"], case["k"], case["kernel"], stride=case["stride"],
                        padding=case["padding"], eta=None)
    x = torch.randn(case["n"], case["c"], case["h"], case["w"], requires_grad=True)
    with adder_kernels.use_backend(backend):
        y = layer(x)
        grad_out = torch.randn_like(y)
        y.backward(grad_out)
    d_x, d_w = addernet_gradients(x.detach().double(), layer.weight.detach().double(),
                                  grad_out.double(), case["stride"], case["padding"])
    assert_close_scaled(x.grad, d_x, 5e-5)
    assert_close_scaled(layer.weight.grad, d_w, 5e-5)


@pytest.mark.parametrize("backend", COMPILED)
def test_kernels_multithreaded_and_large_shapes(backend):
    torch.manual_seed(0)
    S, R, G = torch.randn(3, 45, 37), torch.randn(3, 21, 37), torch.randn(3, 45, 21)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with adder_kernels.use_backend(backend):
            outputs = [adder_kernels.adder_product(S, R, 1.5),
                       adder_kernels.adder_gradient(G, R, S, 1.5, "exact"),
                       adder_kernels.adder_gradient(G, R, S, 1.0, "hardtanh")]
    finally:
        torch.set_num_threads(threads)
    with adder_kernels.use_backend("torch"):
        refs = [adder_kernels.adder_product(S.double(), R.double(), 1.5),
                adder_kernels.adder_gradient(G.double(), R.double(), S.double(), 1.5, "exact"),
                adder_kernels.adder_gradient(G.double(), R.double(), S.double(), 1.0, "hardtanh")]
    for out, ref in zip(outputs, refs):
        assert_close_scaled(out, ref)


def test_product_addernet_rule_at_the_function_level():
    torch.manual_seed(1)
    S = torch.randn(2, 7, 5, dtype=torch.float64, requires_grad=True)
    R = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    y = AdderProduct.apply(S, R, 1.0, "addernet")
    g = torch.randn_like(y)
    y.backward(g)
    d = S.detach()[:, :, None, :] - R.detach()[:, None, :, :]               # (B, A, C, J)
    torch.testing.assert_close(R.grad, (g[..., None] * d).sum(1))
    torch.testing.assert_close(S.grad, (g[..., None] * (-d).clamp(-1, 1)).sum(2))


def test_adaptive_learning_rate_scales_the_filter_gradient():
    """AdderNet's rule is per layer: the whole filter gradient times one scalar
    eta * sqrt(k) / ||grad||₂ (k = the layer's filter entries), so the scaled gradient is the
    plain one times a single number (a per-filter normalisation, which has the same total norm,
    would scale each filter by its own number and fail here)."""
    torch.manual_seed(0)
    layer = AdderConv2d(3, 4, 3, padding=1, eta=0.2)
    x = torch.randn(2, 3, 6, 6)
    layer(x).pow(2).mean().backward()
    expected = 0.2 * layer.weight.numel() ** 0.5
    assert abs(layer.weight.grad.norm().item() - expected) < 1e-4 * expected
    plain = AdderConv2d(3, 4, 3, padding=1, eta=None)
    plain.load_state_dict(layer.state_dict())
    plain(x).pow(2).mean().backward()
    assert abs(plain.weight.grad.norm().item() - expected) > 1e-3
    ratio = layer.weight.grad / plain.weight.grad
    per_filter = ratio.reshape(ratio.shape[0], -1)
    assert torch.allclose(per_filter, per_filter.flatten()[0].expand_as(per_filter), rtol=1e-4)
    norms = plain.weight.grad.reshape(4, -1).norm(dim=1)
    assert norms.max() > 1.05 * norms.min()           # the filters differ: the test can tell


def test_from_conv_copies_weights_and_is_no_convolution():
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=True)
    layer = AdderConv2d.from_conv(conv, eta=None)
    assert torch.equal(layer.weight, conv.weight) and torch.equal(layer.bias, conv.bias)
    assert layer.stride == (2, 2) and layer.padding == (1, 1)
    x = torch.randn(1, 3, 7, 7)
    ref = reference_adder(x.double(), conv.weight.double(), (2, 2), (1, 1), 1.0) + \
        conv.bias.double().reshape(1, -1, 1, 1)
    assert_close_scaled(layer(x), ref)
    again = AdderConv2d.from_conv(layer)
    assert again.eta is None and torch.equal(again.weight, layer.weight)


def test_float64_and_unbatched_inputs():
    layer = AdderConv2d(2, 3, 3, padding="same", dtype=torch.float64)
    x = torch.randn(2, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(layer(x), reference_adder(x[None], layer.weight.double(), (1, 1),
                                                         (1, 1), 1.0)[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(groups=2), "groups=1"), (dict(dilation=2), "dilation=1"), (dict(p=2.5), r"\[1, 2\]"),
    (dict(p=0.5), r"\[1, 2\]"), (dict(grad="sign"), "grad must be"), (dict(eta=-1.0), "eta"),
    (dict(padding="same", stride=2), "padding"), (dict(kernel_size=0), ">= 1")])
def test_bad_arguments_are_clear_errors(kwargs, match):
    args = dict(in_channels=2, out_channels=2, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        AdderConv2d(**args)


def test_bad_inputs_are_clear_errors():
    layer = AdderConv2d(2, 3, 3)
    with pytest.raises(ValueError, match="expects input"):
        layer(torch.randn(1, 4, 5, 5))
    with pytest.raises(ValueError, match="too small"):
        layer(torch.randn(1, 2, 2, 2))
    with pytest.raises(TypeError, match="dtype"):
        layer(torch.randn(1, 2, 5, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="from_conv"):
        AdderConv2d.from_conv(nn.Linear(2, 2))


def test_forced_backend_errors(monkeypatch, fresh_native):
    monkeypatch.setenv(adder_kernels.ENV_VAR, "sse9")
    with pytest.raises(ValueError, match="not an adder backend"):
        adder_kernels.backend()
    monkeypatch.setenv(adder_kernels.ENV_VAR, "avx2")
    monkeypatch.setattr(native_backends, "unavailable_reason",
                        lambda entry: "this CPU lacks avx2 fma" if entry.name == "avx2" else None)
    with pytest.raises(RuntimeError, match="lacks avx2"):
        adder_kernels.backend()
    monkeypatch.setenv(adder_kernels.ENV_VAR, "torch")
    assert adder_kernels.backend() == "torch"


def test_deprecated_adder_variable_is_honoured_with_a_warning(monkeypatch, fresh_native):
    monkeypatch.delenv(adder_kernels.ENV_VAR, raising=False)
    monkeypatch.setenv(native_backends.DEPRECATED_ENV_VAR, "torch")
    with pytest.warns(DeprecationWarning, match="SPARSEWINO_ENGINE_BACKEND=torch"):
        assert adder_kernels.backend() == "torch"


@pytest.mark.skipif(not COMPILED, reason="adder kernels not built")
def test_library_refuses_an_instruction_set_it_cannot_run():
    import ctypes
    lib = native.library()
    S, Rt, Y = torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)
    missing = [b.isa for b in native_backends.registered_backends()
               if b.isa is not None and b.name not in BACKENDS]
    for isa in (99, *missing):
        args = SwAdderArgs(1, 4, 4, 4, S.data_ptr(), Rt.data_ptr(), Y.data_ptr(), 1.0, 1, isa)
        assert lib.sw_adder_forward(ctypes.byref(args)) == -4
    assert lib.sw_isa_supported(99) == 0
    bad_p = SwAdderArgs(1, 4, 4, 4, S.data_ptr(), Rt.data_ptr(), Y.data_ptr(), 3.0, 1, 1)
    assert lib.sw_adder_forward(ctypes.byref(bad_p)) == -1


def test_exponent_outside_range_in_the_product_is_refused():
    with pytest.raises(ValueError, match=r"\[1, 2\]"):
        adder_kernels.adder_product(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), 0.9)
