"""compile(model): whole models equal the original, fusions, reports, fallbacks, errors, safety."""
from __future__ import annotations

import copy
import io
import json
import threading

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from sparsewino import engine
from sparsewino.engine import SparseWinogradConv2d, SparseWinogradConv3d
from sparsewino.nn import WinogradConv2d, WinogradConv3d

from .conftest import (
    COMPILED,
    assert_matches,
    compile_and_compare,
    needs_kernel,
    randomize_batchnorm,
    reference,
    sparse_layer,
)

BACKENDS = COMPILED + ["torch"]


def small_vgg(seed: int = 0) -> nn.Module:
    """Conv-BN-ReLU blocks with a pruned spatial layer, Winograd-domain layers, a strided and
    a 1x1 convolution, pooling and a classifier."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        WinogradConv2d(3, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(),
        WinogradConv2d(12, 16, 3, padding=1, tile=2), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2),
        WinogradConv2d(16, 16, 3, padding=1, domain="winograd"), nn.ReLU(),
        nn.Conv2d(16, 20, 3, stride=2, padding=1), nn.ReLU(),
        WinogradConv2d(20, 24, 3, padding=1, tile=6, domain="winograd"),
        nn.Conv2d(24, 8, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    randomize_batchnorm(net)
    prune.l1_unstructured(net[3], "weight", amount=0.6)          # spatial mask
    prune.l1_unstructured(net[7], "weight", amount=0.8)          # Winograd-domain mask
    with torch.no_grad():                                        # structured spatial zeros
        net[0].weight[:, :2] = 0
    return net.eval()


@pytest.mark.parametrize("backend", BACKENDS)
def test_whole_model_matches_original(backend):
    net = small_vgg()
    x = torch.randn(2, 3, 21, 18)
    fast = compile_and_compare(net, x, backend)
    report = fast.compile_report
    assert report.compiled == ["0", "3", "7", "11", "12", "15"]
    fused = {d.name: d.fused for d in report if d.compiled}
    assert fused == {"0": ("1", "2"), "3": ("4", "5", "6"), "7": ("8",), "11": (), "12": (),
                     "15": ()}
    assert isinstance(fast[1], nn.Identity) and isinstance(fast[8], nn.Identity)
    assert isinstance(fast[6], nn.Identity) and fast[3].spec.pool_output == 2
    assert isinstance(fast[9], nn.Conv2d)                      # strided 3x3: PyTorch
    assert isinstance(fast[12], engine.SparsePointwiseConv2d)
    assert isinstance(fast[15], engine.SparseLinear)
    assert set(report.fallbacks) == {"9"} and "weight density 1.00" in report.fallbacks["9"]
    assert "4 of 4 Winograd layers compiled, 2 GEMM layers" in str(report)
    if backend != "torch":
        with engine.use_backend(backend):
            program = fast.program(x)
        assert program.torch_nodes == ["_9"] and len(program.steps) == 3


@pytest.mark.parametrize("pool,fused", [
    (nn.MaxPool2d(2), True), (nn.MaxPool2d((2, 2), stride=2), True),
    (nn.MaxPool2d(2, ceil_mode=True), False), (nn.MaxPool2d(3, 2), False),
    (nn.MaxPool2d(2, 1), False), (nn.AvgPool2d(2), False)])
@pytest.mark.parametrize("tile", [4, 3])
def test_max_pool_fusion(pool, fused, tile):
    net = nn.Sequential(sparse_layer(3, 5, tile=tile, sparsity=0.4), nn.ReLU(), pool).eval()
    fast = engine.compile(net)
    expect = fused and tile % 2 == 0
    assert fast.compile_report[0].fused == (("1", "2") if expect else ("1",))
    for size in [(9, 7), (4, 4), (2, 3), (13, 16)]:
        if size == (2, 3) and not fused:
            continue                                      # too small for the 3x3 pool
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            for backend in BACKENDS:
                with engine.use_backend(backend):
                    assert_matches(fast(x), net(x).double())


def test_unfused_model_and_densities():
    net = small_vgg()
    fast = engine.compile(net, fuse=False)
    assert isinstance(fast[1], nn.BatchNorm2d) and isinstance(fast[2], nn.ReLU)
    assert {d.name: d.kernel for d in fast.compile_report}["1"] == "engine"   # BN as affine op
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert_matches(fast(x), net(x).double(), tol=1e-4)
    for name in ("0", "3", "7"):
        q = net.get_submodule(name).winograd_weight()
        assert fast.get_submodule(name).density() == pytest.approx(float((q != 0).float().mean()))
    assert fast[7].density() == pytest.approx(0.2, abs=0.01)
    assert fast[0].density() < 1 - 2 / 3 + 1e-6                 # two of three input channels zero


def test_original_untouched_and_copy_independent():
    net = small_vgg().train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    fast = engine.compile(net)
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())
    x = torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        before = fast(x)
        net[7].weight_orig.mul_(3)                               # edit the source afterwards
        assert torch.equal(fast(x), before)


def test_fallbacks_are_reported_and_run():
    torch.manual_seed(0)
    net = nn.Sequential(
        WinogradConv2d(3, 4, 3, padding=1),
        WinogradConv2d(4, 4, 3, padding=1).double().float(),
        WinogradConv3d(4, 4, 3, padding=1),
        WinogradConv2d(4, 4, (3, 1), padding=(1, 0)),
        WinogradConv2d(4, 4, 3, padding=1, tile=8),
    ).eval()
    net[1] = net[1].double()
    fast = engine.compile(net)
    reasons = fast.compile_report.fallbacks
    assert set(reasons) == {"1", "3", "4"}                      # 3-D layers compile too
    assert "float32" in reasons["1"]
    assert "non-square" in reasons["3"] and "n = 10" in reasons["4"]
    assert isinstance(fast[0], SparseWinogradConv2d) and isinstance(fast[2], SparseWinogradConv3d)


def test_root_layer_threads_and_shared_modules():
    layer = sparse_layer(4, 4, sparsity=0.5)
    fast = engine.compile(layer, threads=2)
    assert isinstance(fast, SparseWinogradConv2d) and fast.threads == 2
    assert fast.compile_report.compiled == [""]
    shared = sparse_layer(4, 4)
    net = nn.Sequential(shared, nn.BatchNorm2d(4), shared).eval()
    fast = engine.compile(net)
    assert fast[0] is fast[2] and isinstance(fast[1], nn.BatchNorm2d)   # no fusion of shared
    x = torch.randn(1, 4, 9, 9)
    with torch.no_grad():
        assert_matches(fast(x), net(x).double())
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            engine.compile(layer, threads=bad)
    with pytest.raises(TypeError):
        engine.compile("model")


def test_bad_inputs_give_clear_errors():
    fast = engine.compile(sparse_layer(3, 4))
    with pytest.raises(ValueError, match="3 input channels"):
        fast(torch.randn(1, 5, 8, 8))
    with pytest.raises(TypeError, match="float32"):
        fast(torch.randn(1, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="4-D"):
        fast(torch.randn(1, 1, 3, 8, 8))
    with pytest.raises(ValueError, match="CPU"):
        fast(torch.randn(1, 3, 8, 8, device="meta"))
    with pytest.raises(TypeError, match="torch.Tensor"):
        fast([1.0])
    small = engine.compile(sparse_layer(3, 4, padding=0))
    with pytest.raises(ValueError, match="too small"):
        small(torch.randn(1, 3, 2, 8))
    with pytest.raises(ValueError, match="too small"):
        engine.compile(sparse_layer(3, 4, padding=2))(torch.randn(1, 3, 0, 8))
    with torch.no_grad():
        assert fast(torch.randn(0, 3, 8, 8)).shape == (0, 4, 8, 8)       # empty batch


def test_inference_only():
    fast = engine.compile(sparse_layer(3, 4))
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        fast(x)
    y = fast(x.detach())
    assert not y.requires_grad
    fast.train()
    with pytest.raises(RuntimeError, match="eval"):
        fast(x.detach())
    with pytest.raises(AttributeError):
        fast.spec.tile = 2                                       # configuration is frozen


def test_packed_weights_are_immutable_and_reloads_are_validated():
    layer = sparse_layer(5, 6, sparsity=0.5)
    fast = SparseWinogradConv2d.from_layer(layer, formats="sparse")
    x = torch.randn(1, 5, 10, 10)
    with torch.no_grad():
        base = fast(x)
        assert not list(fast.buffers()) and not list(fast.parameters())
        state = fast.state_dict()
        state["_extra_state"]["packed"]["val"].mul_(2)    # a copy: the layer is unaffected
        state["_extra_state"]["bias"].fill_(7)
        fast.bias.fill_(3)
        assert torch.equal(fast(x), base)
        fast.load_state_dict(state)                        # a valid reload takes effect
        bias = layer.bias.reshape(1, -1, 1, 1)
        torch.testing.assert_close(fast(x) - 7, 2 * (base - bias), rtol=1e-4, atol=1e-4)
        state["_extra_state"]["packed"]["col"].fill_(99)   # corrupt: refused, layer unchanged
        with pytest.raises(ValueError, match="column index"):
            fast.load_state_dict(state)
        torch.testing.assert_close(fast(x) - 7, 2 * (base - bias), rtol=1e-4, atol=1e-4)
    other = SparseWinogradConv2d.from_layer(sparse_layer(5, 6, tile=2))
    with pytest.raises(ValueError, match="configuration"):
        other.load_state_dict(fast.state_dict())


@needs_kernel
@pytest.mark.parametrize("backend", [*COMPILED, "torch"])
def test_reloading_weights_while_another_thread_runs_is_safe(backend):
    """Every output of a forward pass racing load_state_dict is the output of one whole state,
    never a mixture of layers from two (load_state_dict holds the model's lock throughout)."""
    def model(seed: int) -> nn.Module:
        return nn.Sequential(sparse_layer(32, 32, sparsity=0.8, seed=seed), nn.ReLU(),
                             sparse_layer(32, 32, sparsity=0.8, seed=seed + 1)).eval()

    x = torch.randn(2, 32, 24, 24)
    with engine.use_backend(backend):
        fast = engine.compile(model(0))
        states = [engine.compile(model(s)).state_dict() for s in (1, 3)]
        expected = []
        with torch.no_grad():
            for state in states:
                fast.load_state_dict(state)
                expected.append(fast(x))
    assert not torch.equal(expected[0], expected[1])
    outputs: list[torch.Tensor] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with torch.no_grad(), engine.use_backend(backend):
                for _ in range(40):
                    outputs.append(fast(x))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    for i in range(40):
        fast.load_state_dict(states[i % 2])
    worker.join()
    assert not errors
    mixed = [i for i, y in enumerate(outputs) if not any(torch.equal(y, e) for e in expected)]
    assert not mixed, f"{len(mixed)} of {len(outputs)} outputs match neither state"


def test_state_dict_deepcopy_and_pickle():
    layer = sparse_layer(4, 6, sparsity=0.7, tile=2)
    fast = SparseWinogradConv2d.from_layer(layer)
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        expected = fast(x)
        clone = copy.deepcopy(fast)
        assert torch.equal(clone(x), expected)
        buffer = io.BytesIO()
        torch.save(fast, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=False)
        assert torch.equal(loaded(x), expected)
        target = SparseWinogradConv2d.from_layer(sparse_layer(4, 6, sparsity=0.7, tile=2, seed=5))
        target.load_state_dict(fast.state_dict())
        assert torch.equal(target(x), expected)


@needs_kernel
def test_compiled_layer_matches_reference_after_compile():
    layer = sparse_layer(6, 6, sparsity=0.8, winograd_relu=True)
    fast = engine.compile(nn.Sequential(layer, nn.ReLU()).eval())
    x = torch.randn(1, 6, 15, 15)
    with torch.no_grad():
        assert_matches(fast(x), torch.relu(reference(layer, x)))
    assert fast[0].spec.relu_output and fast[0].spec.winograd_relu


def test_whole_model_state_dict_pickle_and_shapes():
    net = small_vgg()
    fast = engine.compile(net)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = fast(x)
        assert fast(torch.randn(1, 3, 21, 18)).shape == (1, 5)      # a second program
        buffer = io.BytesIO()
        torch.save(fast, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=False)
        assert torch.equal(loaded(x), expected)
        clone = copy.deepcopy(fast)
        assert torch.equal(clone(x), expected)
        other = engine.compile(small_vgg(seed=3))
        other.load_state_dict(fast.state_dict())
        assert torch.equal(other(x), expected)


def _resnet(width: int = 8) -> nn.Module:
    from sparsewino.models import resnet18_cifar_max
    from sparsewino.nn import convert
    torch.manual_seed(0)
    model = resnet18_cifar_max(num_classes=7, width=width).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 1.5)
    model, _ = convert(model, tile=4, domain="winograd")
    for layer in model.modules():
        if isinstance(layer, WinogradConv2d):
            with torch.no_grad():
                layer.weight.mul_((torch.rand_like(layer.weight) > 0.7).float())
    return model.eval()


@pytest.mark.parametrize("backend", BACKENDS)
def test_resnet_fuses_residual_additions_and_runs_as_one_program(backend):
    model = _resnet()
    fast = engine.compile(model)
    report = fast.compile_report
    fused_adds = [d for d in report if any(f.startswith("add") for f in d.fused)]
    assert len(fused_adds) == 8                                   # every block's addition
    assert all(d.kernel != "pytorch" for d in report)
    x = torch.randn(2, 3, 19, 17)
    with torch.no_grad():
        expected = model(x)
        with engine.use_backend(backend):
            got = fast(x)
            if backend != "torch":
                program = fast.program(x)
                assert program.torch_nodes == [] and len(program.steps) == 1
    assert_matches(got, expected.double(), tol=1e-4)


class _Odd(nn.Module):
    """Nodes without kernels (sigmoid, a functional conv) between compiled layers."""

    def __init__(self) -> None:
        super().__init__()
        self.a = sparse_layer(3, 6, sparsity=0.5)
        self.b = sparse_layer(6, 6, sparsity=0.5)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        y = torch.sigmoid(self.a(x)) * 2
        y = torch.relu(self.b(y) + y)
        return self.fc(y.amax((2, 3)))          # (y.mean((2, 3)) runs in the engine)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pytorch_nodes_between_engine_segments(backend):
    model = _Odd().eval()
    fast = engine.compile(model)
    x = torch.randn(3, 3, 10, 10)
    with torch.no_grad(), engine.use_backend(backend):
        assert_matches(fast(x), model(x).double(), tol=1e-4)
        if backend != "torch":
            assert {"sigmoid", "mul", "amax"} <= set(fast.program(x).torch_nodes)
    assert "b" in fast.compile_report.compiled and "fc" in fast.compile_report.compiled


@pytest.mark.parametrize("pool", [
    nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(2, ceil_mode=True), nn.MaxPool2d((3, 2), (1, 2)),
    nn.AvgPool2d(2), nn.AvgPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1, count_include_pad=False),
    nn.AvgPool2d(3, 2, 1, ceil_mode=True), nn.AdaptiveAvgPool2d(1), nn.AdaptiveAvgPool2d((2, 3))])
@pytest.mark.parametrize("backend", COMPILED)
def test_pooling_in_the_engine(pool, backend):
    net = nn.Sequential(sparse_layer(3, 5, sparsity=0.3, tile=3), pool, nn.ReLU()).eval()
    fast = engine.compile(net)
    x = torch.randn(2, 3, 12, 18)
    with torch.no_grad(), engine.use_backend(backend):
        program = fast.program(x)
        assert program.torch_nodes == [] and program.kernel_ops == 2     # ReLU fused in the pool
        assert_matches(fast(x), net(x).double(), tol=1e-5)
    alone = nn.Sequential(pool, nn.ReLU())                    # NaN propagates like torch
    x[0, 0, 3, 3] = float("nan")
    with torch.no_grad(), engine.use_backend(backend):
        y, expected = engine.compile(alone)(x), alone(x)
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=1e-6, equal_nan=True)


def test_user_hooks_run_in_pytorch_and_are_reported():
    calls = []
    net = nn.Sequential(sparse_layer(3, 4), nn.ReLU(), sparse_layer(4, 4)).eval()
    net[0].register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    net[2].register_forward_hook(lambda m, args, out: calls.append(out.shape))
    fast = engine.compile(net)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert_matches(fast(x), net(x).double(), tol=1e-4)
    assert calls and "forward hooks" in fast.compile_report.fallbacks["2"]
    assert "0" in fast.compile_report.fallbacks
    # hooks added to a compiled model after compile run too (count() relies on it)
    seen = []
    fast[1].register_forward_hook(lambda m, a, o: seen.append(1))
    with torch.no_grad():
        fast(x)
    assert seen


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_weight_norm_and_prune_masks_are_applied_when_packing():
    linear = torch.nn.utils.weight_norm(nn.Linear(6, 5))
    with torch.no_grad():
        linear.weight_g.mul_(3)
    net = nn.Sequential(nn.Flatten(), linear).eval()
    fast = engine.compile(net)
    x = torch.randn(2, 6)
    with torch.no_grad():
        assert_matches(fast(x), net(x).double(), tol=1e-5)
    assert fast.compile_report.compiled == ["1"]


def test_compile_under_inference_mode_then_training_still_works():
    net = nn.Sequential(sparse_layer(3, 4), nn.ReLU()).train()
    x = torch.randn(1, 3, 8, 8)
    with torch.inference_mode():
        fast = engine.compile(net)
        y = fast(x)
    with torch.no_grad():
        assert_matches(y, net.eval()(x).double(), tol=1e-4)
    net.train()
    loss = net(x).sum()
    loss.backward()
    assert net[0].weight.grad is not None


@needs_kernel
def test_tuning_picks_a_measured_tile_caches_it_and_keeps_results(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(WinogradConv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                        sparse_layer(16, 16, sparsity=0.7), nn.ReLU()).eval()
    x = torch.randn(1, 8, 14, 14)
    cache = tmp_path / "tuning.json"
    fast = engine.compile(net, tune=x, tuning_cache=cache)
    details = {d.name: d.detail for d in fast.compile_report}
    assert "tuned: F(" in details["0"] and "tuned: F(4,r)" in details["3"]   # Winograd domain: own tile
    assert fast[3].spec.tile == 4
    times = json.loads(cache.read_text())
    rules = len(engine.tuning.FORMAT_RULES)                       # per tile: every rule
    assert len(times) == 2 and all(len(v["times"]) in (rules, 3 * rules) for v in times.values())
    with torch.no_grad():
        assert_matches(fast(x), net(x).double(), tol=1e-4)
    again = engine.compile(net, tune=x, tuning_cache=cache)
    assert "tuned (cached)" in {d.name: d.detail for d in again.compile_report}["0"]
    assert again[0].spec.tile == fast[0].spec.tile
    with pytest.raises(TypeError, match="example input"):
        engine.compile(net, tune=[1, 2])
