"""engine.count: additions, multiplications and energy of conv / Winograd / adder / Winograd-adder layers."""
import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from sparsewino import engine
from sparsewino import prune as sp
from sparsewino.engine.count import ENERGY_MODELS, EnergyModel
from sparsewino.models import adder_cnn
from sparsewino.nn import AdderConv2d, WinogradAdderConv2d, WinogradConv2d


def test_operations_per_layer_kind_by_hand():
    torch.manual_seed(0)
    conv, adder = nn.Conv2d(4, 6, 3, padding=1, bias=False), AdderConv2d(6, 6, 3, padding=1)
    wino = WinogradConv2d(6, 6, 3, padding=1, tile=2, points=[0, 1, -1])
    wadder = WinogradAdderConv2d(6, 6, 3, padding=1, tile=2, transforms="standard")
    outputs, tiles = 8 * 8, 4 * 4
    counts = engine.count(nn.Sequential(conv, adder, wino, wadder), (1, 4, 8, 8))
    by_name = {l.name: l for l in counts}
    assert (by_name["0"].additions, by_name["0"].multiplications) == (6 * 36 * outputs,) * 2
    assert (by_name["1"].kind, by_name["1"].additions, by_name["1"].multiplications) == \
        ("adder", 2 * 6 * 54 * outputs, 0)
    # Winograd F(2x2,3x3), Lavin: 16 products per tile and channel pair; 32 input-transform
    # additions per tile and input channel, 24 output-transform additions per output channel
    assert by_name["2"].multiplications == 6 * 6 * 16 * tiles
    assert by_name["2"].additions == 6 * 6 * 16 * tiles + tiles * (6 * 32 + 6 * 24)
    assert by_name["3"].kind == "winograd-adder" and by_name["3"].multiplications == 0
    assert by_name["3"].additions == 2 * 6 * 6 * 16 * tiles + tiles * (6 * 32 + 6 * 24)
    for layer in counts:
        assert layer.energy_pj == pytest.approx(0.9 * layer.additions + 3.7 * layer.multiplications)
    assert counts.operations["energy_pj"] == pytest.approx(sum(l.energy_pj for l in counts))
    text = str(counts)
    assert "winograd-adder" in text and "add 0.9 pJ, multiply 3.7 pJ" in text


def test_winograd_adder_cuts_the_adder_network_operations():
    shape = (1, 1, 28, 28)
    adder = engine.count(adder_cnn(layer="adder"), shape)
    wadder = engine.count(adder_cnn(layer="winograd_adder"), shape)
    cnn = engine.count(adder_cnn(layer="conv"), shape)
    assert wadder.operations["additions"] < 0.6 * adder.operations["additions"]
    assert adder.operations["energy_pj"] < cnn.operations["energy_pj"]
    assert wadder.operations["energy_pj"] < adder.operations["energy_pj"]


def test_pruned_adder_weights_save_the_subtraction_and_p2_costs_multiplications():
    layer = AdderConv2d(4, 4, 3, padding=1)
    full = engine.count(nn.Sequential(layer), (1, 4, 6, 6))["0"]
    sp.magnitude(layer, amount=0.5)
    assert torch_prune.is_pruned(layer)
    half = engine.count(nn.Sequential(layer), (1, 4, 6, 6))["0"]
    assert half.additions == pytest.approx(0.75 * full.additions)
    assert half.weight_density == pytest.approx(0.5)
    layer.p = 2.0
    squared = engine.count(nn.Sequential(layer), (1, 4, 6, 6))["0"]
    assert squared.multiplications == 4 * 36 * 36


def test_energy_models():
    net = nn.Sequential(AdderConv2d(2, 2, 3))
    counts = engine.count(net, (1, 2, 5, 5), energy="int8-45nm")
    assert counts.energy_model is ENERGY_MODELS["int8-45nm"]
    custom = engine.count(net, (1, 2, 5, 5), energy=EnergyModel("test", 1.0, 10.0))
    assert custom.operations["energy_pj"] == custom.operations["additions"]
    assert counts.to_dict()["operations"]["additions"] == custom.operations["additions"]
    with pytest.raises(ValueError, match="energy"):
        engine.count(net, (1, 2, 5, 5), energy="fp64-7nm")


def test_compile_runs_adder_layers_on_the_pytorch_path_and_says_why():
    torch.manual_seed(0)
    model = adder_cnn(layer="winograd_adder").eval()
    fast = engine.compile(model)
    fallbacks = engine.compile_report(fast).fallbacks
    assert {"3", "7", "11"} <= set(fallbacks)
    assert all("no kernel for its Winograd transforms" in fallbacks[name] for name in ("3", "7", "11"))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-4)


def test_magnitude_prunes_adder_layers_through_the_mask_mechanism():
    torch.manual_seed(0)
    model = adder_cnn(layer="winograd_adder")
    sp.prune_model(model, "magnitude", 0.6)
    for name in ("3", "7", "11"):
        layer = model.get_submodule(name)
        assert torch_prune.is_pruned(layer)
        assert float((layer.weight == 0).float().mean()) == pytest.approx(0.6, abs=0.01)
    loss = model(torch.randn(2, 1, 28, 28)).sum()
    loss.backward()
    layer = model.get_submodule("3")
    assert torch.all(layer.weight_orig.grad[layer.weight_mask == 0] == 0)
    torch_prune.remove(layer, "weight")
    assert not torch_prune.is_pruned(layer) and float((layer.weight == 0).float().mean()) > 0.55
