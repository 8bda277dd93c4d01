"""engine.compile and engine.count on models with 3-D Winograd layers (vanilla, masked, low-rank)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsewino import engine
from sparsewino import prune as sp
from sparsewino.engine import SparseWinogradConv3d
from sparsewino.nn import LowRankWinogradConv3d, WinogradConv3d, convert

from .conftest import COMPILED, assert_matches, needs_kernel


def c3d_like(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv3d(1, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(), nn.MaxPool3d((1, 2, 2)),
        nn.Conv3d(8, 12, 3, padding=1), nn.BatchNorm3d(12), nn.ReLU(), nn.MaxPool3d(2),
        nn.Conv3d(12, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
        nn.Linear(16, 5))
    for module in net.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    return net.eval()


def reference(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    import copy
    with torch.no_grad():
        return copy.deepcopy(net).double()(x.double())


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("variant", ["spatial", "low_rank_columns", "unstructured"])
def test_whole_3d_model_runs_as_one_program(backend, variant):
    net = c3d_like()
    if variant == "spatial":
        convert(net, tile=2)
    elif variant == "low_rank_columns":
        convert(net, tile=4, low_rank=0.25)
        sp.prune_model(net, "column", 0.5)
    else:
        convert(net, tile=4, domain="winograd")
        sp.prune_model(net, "magnitude", 0.75)
    with engine.use_backend(backend):
        fast = engine.compile(net)
        report = fast.compile_report
        assert report.compiled == ["0", "4", "8", "12"] and not report.fallbacks
        assert report[0].fused == ("1", "2") and report[2].fused == ("9",)
        assert all(isinstance(fast[i], SparseWinogradConv3d) for i in (0, 4, 8))
        x = torch.randn(2, 1, 6, 12, 12)
        with torch.no_grad():
            program = fast.program(x)
            assert program.torch_nodes == [] and len(program.steps) == 1
            assert_matches(fast(x), reference(net, x), tol=1e-4)
    if variant == "low_rank_columns":
        assert fast[4].format_counts()["zero"] == 108            # half of 216 positions


@needs_kernel
def test_residual_block_fuses_add_and_relu():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = WinogradConv3d(6, 6, 3, padding=1, tile=2)
            self.bn = nn.BatchNorm3d(6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.bn(self.conv(x)) + x)

    torch.manual_seed(0)
    block = Block().eval()
    fast = engine.compile(block)
    assert fast.compile_report[0].fused == ("bn", "add", "relu")
    x = torch.randn(2, 6, 5, 4, 6)
    with torch.no_grad():
        assert_matches(fast(x), reference(block, x))


def test_count_understands_low_rank_and_compiled_3d_layers():
    net = c3d_like()
    convert(net, tile=4, low_rank=0.25)
    sp.prune_model(net, "column", 0.75)
    counts = engine.count(net, (1, 1, 8, 16, 16))
    layer = counts["4"]
    assert layer.algorithm == "F(4x4x4,3x3x3)" and layer.weight_density == pytest.approx(0.25)
    assert layer.sparse * 4 == layer.winograd
    compiled = engine.count(engine.compile(net), (1, 1, 8, 16, 16))
    assert [(l.direct, l.winograd, l.sparse) for l in compiled] == \
        [(l.direct, l.winograd, l.sparse) for l in counts]


def test_uncompilable_3d_layers_keep_their_forward_with_the_reason():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = nn.Sequential(WinogradConv3d(2, 3, (3, 3, 1), padding=(1, 1, 0), tile=2),
                            WinogradConv3d(3, 3, 3, padding=1, tile=2).double().float())
    fast = engine.compile(net.eval())
    assert fast.compile_report.fallbacks == {"0": "non-square kernel (3, 3, 1) with tile (2, 2, 1): "
                                                  "the kernel needs the same F(m, r) along D, H and W"}
    x = torch.randn(1, 2, 4, 4, 4)
    with torch.no_grad():
        assert_matches(fast(x), reference(net, x))


def test_low_rank_layer_compiles_like_its_full_winograd_layer():
    layer = LowRankWinogradConv3d(5, 6, 3, rank=10, tile=2, padding=1).eval()
    full = layer.to_winograd().eval()
    a, b = engine.compile(layer), engine.compile(full)
    assert torch.equal(a.dense_weights(), b.dense_weights())


@needs_kernel
def test_tuning_chooses_3d_tiles_by_measurement_and_caches_them(tmp_path):
    import json
    net, _ = convert(c3d_like(3), tile=4)                       # spatial F(4,3)^3 layers
    net[4] = LowRankWinogradConv3d.from_conv(nn.Conv3d(8, 12, 3, padding=1), rank=8, tile=2)
    net = net.eval()
    x = torch.randn(2, 1, 6, 10, 10)
    cache = tmp_path / "tuning.json"
    fast = engine.compile(net, tune=x, tuning_cache=cache)
    details = {d.name: d.detail for d in fast.compile_report}
    assert "tuned: F(" in details["0"] and "tuned: F(" in details["8"]
    assert "tuned: F(2,r)" in details["4"]                      # Winograd domain: keeps its tile
    entries = json.loads(cache.read_text())
    assert len(entries) == 3
    # spatial layers try F(2,3)^3, F(4,3)^3 and F(6,3)^3, each with three format rules
    assert max(len(v["times"]) for v in entries.values()) == 3 * len(engine.tuning.FORMAT_RULES)
    assert {fast[0].spec.tile, fast[8].spec.tile} <= {2, 4, 6}
    assert_matches(fast(x), reference(net, x), tol=1e-4)
    again = engine.compile(net, tune=x, tuning_cache=cache)
    assert "tuned (cached)" in {d.name: d.detail for d in again.compile_report}["0"]
