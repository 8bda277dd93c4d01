"""AdderConv2d in the engine: the compiled layer and whole adder models against float64 references."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsewino import engine
from sparsewino.engine.adder import CompiledAdderConv2d
from sparsewino.nn import AdderConv2d, WinogradAdderConv2d

from .conftest import COMPILED, needs_kernel

BACKENDS = [*COMPILED, "torch"]


def adder_reference(x: torch.Tensor, layer: AdderConv2d, scale=None, shift=None,
                    residual=None, relu=False) -> torch.Tensor:
    """-sum |patch - w|^p (+ bias), then the fused affine map, residual and ReLU, in float64."""
    x64, w = x.double(), layer.weight.detach().double()
    n = x.shape[0]
    ho, wo = layer.output_size(*x.shape[2:])
    cols = F.unfold(x64, layer.kernel_size, padding=layer.padding, stride=layer.stride)
    y = -(cols[:, None] - w.reshape(w.shape[0], -1, 1)).abs().pow(layer.p).sum(2)
    y = y.reshape(n, -1, ho, wo)
    if layer.bias is not None:
        y = y + layer.bias.detach().double().reshape(1, -1, 1, 1)
    if scale is not None:
        y = y * scale.double().reshape(1, -1, 1, 1) + shift.double().reshape(1, -1, 1, 1)
    if residual is not None:
        y = y + residual.double()
    return torch.relu(y) if relu else y


def assert_close(y: torch.Tensor, ref: torch.Tensor, tol: float = 2e-5) -> None:
    assert y.shape == ref.shape and torch.isfinite(y).all()
    scale = max(1.0, ref.abs().max().item())
    assert (y.double() - ref).abs().max().item() <= tol * scale


@settings(max_examples=25, deadline=None)
@given(c=st.integers(1, 7), k=st.integers(1, 9), kernel=st.integers(1, 5), stride=st.integers(1, 3),
       padding=st.integers(0, 2), h=st.integers(1, 11), w=st.integers(1, 11), batch=st.integers(1, 3),
       p=st.sampled_from([1.0, 1.5, 2.0]), bias=st.booleans(), fused=st.booleans(),
       seed=st.integers(0, 10**6))
def test_compiled_adder_layer_matches_float64(c, k, kernel, stride, padding, h, w, batch, p,
                                              bias, fused, seed):
    torch.manual_seed(seed)
    if h + 2 * padding < kernel or w + 2 * padding < kernel:
        return
    layer = AdderConv2d(c, k, kernel, stride=stride, padding=padding, bias=bias, p=p).eval()
    with torch.no_grad():
        layer.weight.mul_((torch.rand_like(layer.weight) > 0.3).float())     # pruned zeros
    scale = torch.rand(k) + 0.5 if fused else None
    shift = torch.randn(k) if fused else None
    fast = CompiledAdderConv2d.from_layer(layer, relu=fused, scale=scale, shift=shift,
                                          residual=fused)
    x = torch.randn(batch, c, h, w)
    ho, wo = layer.output_size(h, w)
    residual = torch.randn(batch, k, ho, wo) if fused else None
    ref = adder_reference(x, layer, scale, shift, residual, relu=fused)
    for backend in BACKENDS:
        with torch.no_grad(), engine.use_backend(backend):
            if backend == "torch":
                got = fast(x, residual) if fused else fast(x)
            else:                                # NaN-poisoned buffers: every element written
                got = fast._forward_kernel(x, backend, residual, poison=True)
        assert_close(got, ref)


def test_unbatched_input_and_state():
    torch.manual_seed(0)
    layer = AdderConv2d(3, 4, 3, padding=1, bias=True).eval()
    fast = engine.compile(layer)
    assert isinstance(fast, CompiledAdderConv2d)
    x = torch.randn(3, 6, 5)
    with torch.no_grad():
        assert_close(fast(x), adder_reference(x[None], layer)[0])
    other = engine.compile(AdderConv2d(3, 4, 3, padding=1, bias=True).eval())
    other.load_state_dict(fast.state_dict())
    with torch.no_grad():
        assert torch.equal(other(x), fast(x))
    bad = fast.state_dict()
    key = next(iter(bad))
    bad[key] = {"weight": torch.zeros(2, 2), "scale": torch.ones(4), "shift": torch.zeros(4)}
    with pytest.raises(ValueError, match="does not fit"):
        other.load_state_dict(bad)


class AdderNet(nn.Module):
    """AdderNet's block shape: adder → BatchNorm → ReLU, a strided adder, a residual adder."""

    def __init__(self) -> None:
        super().__init__()
        self.a1, self.bn1 = AdderConv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.a2, self.bn2 = AdderConv2d(8, 8, 3, stride=2, padding=1, p=2.0), nn.BatchNorm2d(8)
        self.a3, self.bn3 = AdderConv2d(8, 8, 3, padding=1, bias=True), nn.BatchNorm2d(8)
        self.head = nn.Linear(8 * 5 * 5, 4)

    def forward(self, x):
        x = torch.relu(self.bn1(self.a1(x)))
        y = torch.relu(self.bn2(self.a2(x)))
        y = torch.relu(self.bn3(self.a3(y)) + y)
        return self.head(torch.flatten(y, 1))


def _randomized(net: nn.Module) -> nn.Module:
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-20, -5)       # adder outputs are large negatives
                module.running_var.uniform_(5, 50)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_compiled_adder_model_runs_in_the_engine(backend):
    torch.manual_seed(3)
    net = _randomized(AdderNet())
    x = torch.randn(2, 3, 10, 10)
    with engine.use_backend(backend):
        fast = engine.compile(net)
        with torch.no_grad():
            got = fast(x)
        program = fast.program(x)
    report = {entry.name: entry for entry in fast.compile_report}
    for name in ("a1", "a2", "a3"):
        assert report[name].kernel == "adder" and report[name].compiled
    assert report["a1"].fused == ("bn1", "relu")
    assert report["a3"].fused == ("bn3", "add", "relu_2")
    if backend != "torch":
        assert program is not None and program.torch_nodes == []
        assert {op.op for s in program.steps for op in s.ops} >= {"extract", "adder", "eltwise"}
    with torch.no_grad():
        ref = net.double()(x.double())
    assert_close(got, ref, tol=1e-4)


def test_counts_of_a_compiled_adder_model_are_unchanged():
    torch.manual_seed(4)
    net = _randomized(AdderNet())
    with torch.no_grad():
        net.a2.weight[:, :3] = 0                            # pruned weights save subtractions
    before = engine.count(net, (2, 3, 10, 10))
    after = engine.count(engine.compile(net), (2, 3, 10, 10))
    assert [(l.name, l.kind, l.additions, l.multiplications, l.weight_density) for l in after] == \
        [(l.name, l.kind, l.additions, l.multiplications, l.weight_density) for l in before]


def test_winograd_adder_layers_say_why_they_stay_in_pytorch():
    torch.manual_seed(5)
    net = nn.Sequential(WinogradAdderConv2d(3, 4, 3, padding=1, tile=2), nn.ReLU()).eval()
    fast = engine.compile(net)
    entry = next(e for e in fast.compile_report if e.name == "0")
    assert not entry.compiled and "Winograd transforms" in entry.detail
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        assert torch.allclose(fast(x), net(x))


@needs_kernel
def test_compile_report_and_describe():
    fast = engine.compile(nn.Sequential(AdderConv2d(2, 3, 5, stride=2, padding=2), nn.ReLU()).eval())
    text = str(fast.compile_report)
    assert "adder 5x5 stride (2, 2), p = 1" in text
