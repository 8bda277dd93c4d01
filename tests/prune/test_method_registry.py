"""The method registry is the one list of pruning methods: prune_model, recipes, CLI and docs read it."""
import dataclasses

import pytest
import torch
from torch import nn

from sparsewino import prune as sp
from sparsewino.cli import main
from sparsewino.errors import UnknownNameError
from sparsewino.prune.methods.base import MethodSpec, option
from sparsewino.recipes import parse_recipe, recipe_to_dict
from sparsewino.train import ConfigError

EXPECTED = ["column", "magnitude", "native", "spatial_winograd", "structured", "winograd_domain", "winograd_relu"]


def test_every_method_is_registered_with_what_the_pipeline_needs():
    assert sp.METHODS.names() == EXPECTED
    for name, spec in sp.METHODS.items():
        assert spec.name == name and spec.description and spec.usage and spec.prunes and spec.unit
        assert dataclasses.is_dataclass(spec.options) and callable(spec.layer_function)
        assert all(f.metadata.get("help") for f in dataclasses.fields(spec.options)), name
    assert sp.METHODS["native"].trains and not sp.METHODS["magnitude"].trains
    assert sp.METHODS["winograd_domain"].states == ("winograd", "winograd_relu")


def test_unknown_and_training_methods_are_clear_errors():
    net = nn.Sequential(nn.Conv2d(1, 2, 3))
    with pytest.raises(UnknownNameError,
                       match="unknown pruning method 'prunez'; choose one of column, magnitude, native"):
        sp.prune_model(net, "prunez", 0.5)
    with pytest.raises(ValueError, match="prunes while training"):
        sp.prune_model(net, "native", 0.5)
    with pytest.raises(ValueError, match="prunes while training"):
        sp.PruningCallback("native", sp.StepSchedule([0.5]))


def test_options_are_validated_from_their_declared_ranges():
    spec = sp.METHODS["winograd_domain"]
    with pytest.raises(ValueError, match="grad_power must be >= 0"):
        sp.method_options(spec, spec.options(grad_power=-1.0))
    with pytest.raises(ValueError, match="grad_power must be a number"):
        sp.method_options(spec, spec.options(grad_power=float("nan")))
    assert sp.method_options(spec, spec.options(ifm=False)) == {"ifm": False}
    structured = sp.METHODS["structured"]
    assert sp.method_options(structured, context=sp.PruneContext(seed=3)) == {"seed": 3}
    with pytest.raises(ValueError, match="needs held-out validation images"):
        sp.method_options(structured, structured.options(importance="particle_filter"))
    with pytest.raises(ValueError, match="apply to importance 'particle_filter' only"):
        structured.options(particles=4)


@dataclasses.dataclass(frozen=True)
class _HalfOptions:
    scale: float | None = option("multiply the kept weights by this (default 1)", low=0)


def _half_build(module, name="weight", scale=None, **_):
    return sp.METHODS["magnitude"].build(module, name)


@pytest.fixture
def new_method():
    """A method added the documented way: one spec, one registration."""
    spec = sp.register_method(MethodSpec(
        "toy_half", lambda module, **_: None if isinstance(module, nn.Conv2d) else "-", _half_build,
        options=_HalfOptions, description="a toy method registered by a test", usage="toy(layer)",
        prunes="convolutions", unit="entries", layer_function=_half_build))
    yield spec
    sp.METHODS.unregister("toy_half")


def test_a_registered_method_reaches_prune_model_recipes_and_the_cli(new_method, capsys):
    net = sp.prune_model(nn.Sequential(nn.Conv2d(2, 4, 3)), "toy_half", 0.5)
    assert float((net[0].weight == 0).float().mean()) == 0.5
    recipe = parse_recipe({"name": "t", "data": {"dataset": "fake"}, "model": {"name": "small_vgg"},
                           "stages": [{"stage": "prune", "name": "p", "method": "toy_half", "scale": 2.0,
                                       "amount": 0.5}]})
    assert recipe.stages[0].options == _HalfOptions(scale=2.0)
    assert recipe_to_dict(recipe)["stages"][0]["scale"] == 2.0
    with pytest.raises(ConfigError, match=r"option\(s\) \['scale'\] do not apply to method 'magnitude'"):
        parse_recipe({**recipe_to_dict(recipe), "stages": [{"stage": "prune", "method": "magnitude",
                                                            "scale": 2.0, "amount": 0.5}]})
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    help_text = capsys.readouterr().out
    assert "toy_half" in help_text and "--scale" in help_text and "toy_half: multiply the kept" in help_text


def test_magnitude_prunes_linear_layers_on_the_one_mask_mechanism():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    sp.prune_model(net, "magnitude", 0.75, layers="linear")
    assert sp.get_mask(net[0]) is None and sp.get_mask(net[2]) is not None
    assert float((net[2].weight == 0).float().mean()) == 0.75
    report = sp.stats(net, input_shape=(1, 1, 8, 8))
    assert [l.name for l in report.layers] == ["0"] and [l.name for l in report.linear] == ["2"]
    assert report["2"].spatial_sparsity == 0.75 and report["2"].method == "magnitude"
    assert report.totals["linear_sparsity"] == 0.75 and report.totals["spatial_sparsity"] == 0.0
    assert "linear layers: 75.0%" in str(report)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(3):                                      # the mask holds through training
        optimizer.zero_grad()
        net(torch.randn(4, 1, 8, 8)).square().sum().backward()
        optimizer.step()
    net(torch.zeros(1, 1, 8, 8))                            # recomputes weight = orig * mask
    assert float((net[2].weight == 0).float().mean()) == 0.75
    sp.prune_model(net, "magnitude", 0.5, layers="all")
    assert float((net[0].weight == 0).float().mean()) == 0.5
