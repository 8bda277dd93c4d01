"""WinogradAdderConv2d vs a float64 per-tile reference: Y = Aᵀ[-sum_c |U - Bᵀ d B|^p]A."""
import math
import pickle

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from sparsewino.nn import AdderConv2d, WinogradAdderConv2d, WinogradConv2d, adder_kernels, set_exponent
from sparsewino.train import L2ToL1Schedule
from sparsewino.winograd.balanced import is_balanced
from sparsewino.winograd.transform import filter_transform

BACKENDS = adder_kernels.available_backends()


def reference(x, u, alg, padding, p, bias=None):
    """Independent float64 reference: tiles by unfold, transforms by einsum, crop."""
    m, n = alg.m, alg.n
    N, C, H, W = x.shape
    oh, ow = H + 2 * padding - 2, W + 2 * padding - 2
    th, tw = math.ceil(oh / m), math.ceil(ow / m)
    xp = torch.zeros(N, C, (th - 1) * m + n, (tw - 1) * m + n, dtype=x.dtype)
    xp[:, :, padding:padding + H, padding:padding + W] = x
    d = xp.unfold(2, n, m).unfold(3, n, m)                              # (N, C, th, tw, n, n)
    bt, at = alg.BT.double(), alg.AT.double()
    v = torch.einsum("ik,nctukl,jl->nctuij", bt, d, bt)
    diff = u[None, :, :, None, None] - v[:, None]                    # (N, K, C, th, tw, n, n)
    mm = -(diff.abs() ** p).sum(2)                                      # (N, K, th, tw, n, n)
    y = torch.einsum("ik,nbtukl,jl->nbtuij", at, mm, at)                # (N, K, th, tw, m, m)
    y = y.permute(0, 1, 2, 4, 3, 5).reshape(N, -1, th * m, tw * m)[:, :, :oh, :ow]
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


@st.composite
def cases(draw):
    padding = draw(st.integers(0, 1))
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 4)), k=draw(st.integers(1, 18)),
                h=draw(st.integers(3 - 2 * padding, 10)), w=draw(st.integers(3 - 2 * padding, 10)),
                padding=padding, tile=draw(st.sampled_from([2, 4])),
                transforms=draw(st.sampled_from(["balanced", "standard"])),
                p=draw(st.sampled_from([1.0, 2.0, 1.5])), bias=draw(st.booleans()))


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=cases(), seed=st.integers(0, 2**16))
def test_forward_and_exact_backward_match_reference(backend, case, seed):
    torch.manual_seed(seed)
    layer = WinogradAdderConv2d(case["c"], case["k"], 3, padding=case["padding"], tile=case["tile"],
                                transforms=case["transforms"], p=case["p"], bias=case["bias"],
                                grad="exact", eta=None)
    x = torch.randn(case["n"], case["c"], case["h"], case["w"], requires_grad=True)
    with adder_kernels.use_backend(backend):
        y = layer(x)
        g = torch.randn_like(y)
        y.backward(g)
    x64 = x.detach().double().requires_grad_()
    u64 = layer.weight.detach().double().requires_grad_()
    bias = layer.bias.detach().double() if case["bias"] else None
    ref = reference(x64, u64, layer.algorithms[0], case["padding"], case["p"], bias)
    ref.backward(g.double())
    # F(4,3)'s larger transform entries (balanced: up to 40/3) amplify float32 rounding
    loose = 1 if case["tile"] == 2 else 10
    for out, want, tol in ((y, ref, 2e-5 * loose), (x.grad, x64.grad, 1e-4 * loose),
                           (layer.weight.grad, u64.grad, 1e-4 * loose)):
        assert out.shape == want.shape and torch.isfinite(out).all()
        scale = max(1.0, want.abs().max().item())
        assert (out.double() - want).abs().max().item() <= tol * scale


def test_addernet_rule_weight_gradient_is_full_precision():
    torch.manual_seed(0)
    layer = WinogradAdderConv2d(2, 3, 3, padding=1, tile=2, eta=None, dtype=torch.float64)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    layer(x).sum().backward()
    alg = layer.algorithms[0]
    # d/dU of sum(Y) with the full-precision rule: sum over tiles of (Aᵀ1)(Aᵀ1)ᵀ ⊙ (V - U), per k, c
    xp = torch.zeros(1, 2, 6, 6, dtype=torch.float64)
    xp[:, :, 1:5, 1:5] = x
    v = torch.einsum("ik,nctukl,jl->nctuij", alg.BT, xp.unfold(2, 4, 2).unfold(3, 4, 2), alg.BT)
    weight = alg.AT.sum(0)
    outer = weight[:, None] * weight[None, :]
    expected = (outer * (v[:, None] - layer.weight.detach()[None, :, :, None, None])).sum((0, 3, 4))
    torch.testing.assert_close(layer.weight.grad, expected)


def test_balanced_and_standard_differ_and_balanced_tiles_have_equal_means():
    torch.manual_seed(0)
    std = WinogradAdderConv2d(8, 4, 3, tile=2, transforms="standard")
    bal = WinogradAdderConv2d(8, 4, 3, tile=2, transforms="balanced")
    assert is_balanced(bal.algorithms[0].AT_exact) and not is_balanced(std.algorithms[0].AT_exact)
    bal.load_state_dict(std.state_dict())
    x = torch.randn(4, 8, 12, 12)
    with torch.no_grad():
        ys, yb = std(x), bal(x)
    assert not torch.allclose(ys, yb)
    # per output position within a 2x2 tile: the standard transform's means differ in sign
    means_std = torch.stack([ys[..., i::2, j::2].mean() for i in range(2) for j in range(2)])
    means_bal = torch.stack([yb[..., i::2, j::2].mean() for i in range(2) for j in range(2)])
    assert (means_std > 0).any() and (means_std < 0).any()
    assert (means_bal < 0).all()
    assert means_bal.max() / means_bal.min() > 0.8          # equal up to sampling noise
    assert means_std.min() / means_std.max() < -1


def test_from_conv_transforms_the_spatial_weights():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    for source in (conv, AdderConv2d.from_conv(conv), WinogradConv2d.from_conv(conv, tile=2)):
        layer = WinogradAdderConv2d.from_conv(source, tile=4, transforms="balanced")
        expected = filter_transform(conv.weight.detach(), layer.algorithms)
        torch.testing.assert_close(layer.weight.detach(), expected, rtol=1e-5, atol=1e-5)
        assert torch.equal(layer.bias, conv.bias) and layer.padding == (1, 1)
    with pytest.raises(TypeError, match="from_conv"):
        WinogradAdderConv2d.from_conv(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="stride=1"):
        WinogradAdderConv2d.from_conv(nn.Conv2d(3, 4, 3, stride=2))


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_size=5), "3x3"), (dict(stride=2), "stride=1"), (dict(dilation=2), "dilation"),
    (dict(groups=2), "groups"), (dict(tile=3), "tile"), (dict(transforms="fancy"), "transforms"),
    (dict(p=3.0), r"\[1, 2\]"), (dict(padding="full"), "padding")])
def test_bad_arguments_are_clear_errors(kwargs, match):
    args = dict(in_channels=2, out_channels=2, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        WinogradAdderConv2d(**args)


def test_state_dict_pickle_and_exponent_helpers():
    layer = WinogradAdderConv2d(2, 3, 3, padding=1, tile=4)
    clone = pickle.loads(pickle.dumps(layer))
    x = torch.randn(1, 2, 7, 7)
    torch.testing.assert_close(clone(x), layer(x))
    net = set_exponent(nn.Sequential(layer, AdderConv2d(3, 3, 1)), 2.0)
    assert net[0].p == net[1].p == 2.0
    with pytest.raises(ValueError, match=r"\[1, 2\]"):
        set_exponent(net, 0.5)


def test_l2_to_l1_schedule_resumes_where_it_stopped():
    net = nn.Sequential(WinogradAdderConv2d(2, 2, 3))
    schedule = L2ToL1Schedule(total_steps=100, anneal_fraction=0.5)
    schedule.on_train_begin(net)
    assert net[0].p == 2.0
    for step in range(20):
        schedule.after_step(net, step)
    assert net[0].p == pytest.approx(1.6)
    resumed = L2ToL1Schedule(total_steps=100, anneal_fraction=0.5)
    resumed.load_state_dict(schedule.state_dict())
    set_exponent(net, 1.0)
    resumed.on_train_begin(net)
    assert net[0].p == pytest.approx(1.6)
    resumed.after_step(net, 60)
    assert net[0].p == 1.0
    with pytest.raises(ValueError):
        L2ToL1Schedule(total_steps=0)
    with pytest.raises(ValueError):
        L2ToL1Schedule(total_steps=10, start=3.0)
