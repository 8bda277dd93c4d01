"""Recipes with low-rank conversion and column pruning: validation and the stage order rules."""
import pytest

from sparsewino.nn import LowRankWinogradConv3d
from sparsewino.recipes import build_model, load_recipe, parse_recipe
from sparsewino.recipes.architecture import apply_transform, new_architecture
from sparsewino.train import ConfigError


def recipe(convert: dict, prune: dict | None = None) -> dict:
    stages = [{"stage": "convert", "name": "lr", **convert}]
    if prune is not None:
        stages.append({"stage": "prune", "name": "cols", **prune})
    return {"name": "t", "data": {"dataset": "fake", "options": {"frames": 4}},
            "model": {"name": "c3d_small"}, "stages": stages}


def test_low_rank_convert_and_column_stage_parse():
    parsed = parse_recipe(recipe({"low_rank": 0.25, "exclude": ["features.0"]},
                                 {"method": "column", "targets": [0.5, 0.75], "importance": "l1"}))
    convert, prune = parsed.stages
    assert convert.low_rank == 0.25 and convert.domain == "winograd"
    assert prune.options.importance == "l1" and prune.target_list() == [0.5, 0.75]
    assert parse_recipe(recipe({"low_rank": 8})).stages[0].low_rank == 8


@pytest.mark.parametrize("convert,message", [
    ({"low_rank": 0}, "low_rank: rank must be >= 1"),
    ({"low_rank": 1.5}, r"\(0, 1\]"),
    ({"low_rank": 8, "domain": "spatial"}, "use domain: winograd"),
    ({"low_rank": 8, "winograd_relu": True}, "no winograd_relu"),
])
def test_bad_low_rank_stages(convert, message):
    with pytest.raises(ConfigError, match=message):
        parse_recipe(recipe(convert))


def test_column_pruning_needs_a_winograd_domain_model_first():
    data = recipe({"domain": "spatial"}, {"method": "column", "amount": 0.5})
    with pytest.raises(ConfigError, match="a convert stage with domain: winograd"):
        parse_recipe(data)


def test_architecture_records_replay_the_low_rank_conversion():
    architecture = new_architecture("c3d_small", {"widths": [4, "P", 6]}, 1, 5)
    model = build_model(architecture)
    apply_transform(model, architecture, "convert", tile=4, domain="winograd", low_rank=0.1,
                    exclude=["features.0"])
    rebuilt = build_model(architecture)
    layer = rebuilt.features[4]
    assert isinstance(layer, LowRankWinogradConv3d) and layer.rank == 22
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


def test_bundled_recipe_is_the_documented_pipeline():
    bundled = load_recipe("moving_fashion_mnist_lowrank_column")
    kinds = [(s.kind, getattr(s, "method", None)) for s in bundled.stages]
    assert kinds[:4] == [("train", None), ("convert", None), ("finetune", None), ("prune", "column")]
    assert bundled.data.dataset == "moving-fashion-mnist-motion"
    assert bundled.stages[1].low_rank == 0.25
