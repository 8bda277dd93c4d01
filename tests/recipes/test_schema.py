"""Recipe validation: every bundled recipe parses; mistakes get messages naming the key."""
import copy

import pytest

from sparsewino.recipes import (
    apply_overrides,
    bundled_recipes,
    load_recipe,
    parse_recipe,
    read_recipe_data,
    recipe_to_dict,
)
from sparsewino.recipes.loading import find_recipe, smoke_variant
from sparsewino.train import ConfigError

BASE = {
    "name": "t", "data": {"dataset": "fake"}, "model": {"name": "small_vgg"},
    "stages": [
        {"stage": "train", "name": "base", "epochs": 1},
        {"stage": "prune", "name": "s1", "method": "spatial_winograd", "targets": [0.2, 0.4],
         "finetune": {"epochs": 0.5}},
        {"stage": "convert", "name": "conv", "domain": "winograd"},
        {"stage": "prune", "name": "s2", "method": "winograd_domain", "amount": 0.6, "grad_power": 1.0},
        {"stage": "report"},
    ],
}


def variant(path, value):
    data = copy.deepcopy(BASE)
    return apply_overrides(data, [f"{path}={value}"])


def test_all_bundled_recipes_validate_and_roundtrip():
    names = bundled_recipes()
    expected = {f"{d}_{m}" for d, m in [
        ("fashion_mnist", "spatial_winograd"), ("fashion_mnist", "native"), ("fashion_mnist", "winograd_relu"),
        ("fashion_mnist", "structured"), ("fashion_mnist", "magnitude"),
        ("cifar10_vgg_nagadomi", "spatial_winograd"), ("cifar10_vgg_nagadomi", "winograd_relu"),
        ("cifar10_vgg_nagadomi", "native"), ("cifar10_vgg_nagadomi", "structured"),
        ("cifar10_vgg_nagadomi", "magnitude"), ("cifar100_convpool", "spatial_winograd"),
        ("cifar100_convpool", "winograd_relu"), ("imagenet_resnet18", "spatial_winograd"),
        ("imagenet_resnet18", "winograd_relu"), ("imagenet_resnet18", "native")]}
    assert expected <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe.name == name
        assert parse_recipe(recipe_to_dict(recipe)) == recipe
        smoke = parse_recipe(smoke_variant(read_recipe_data(find_recipe(name))))
        assert smoke.data.dataset == "fake" and smoke.name == f"{name}-smoke"


def test_valid_base():
    recipe = parse_recipe(BASE)
    assert [s.kind for s in recipe.stages] == ["train", "prune", "convert", "prune", "report"]
    assert recipe.stages[1].target_list() == [0.2, 0.4] and recipe.stages[4].name == "report"


@pytest.mark.parametrize("path,value,message", [
    ("data.datset", "x", r"data: unknown key 'datset'; did you mean 'dataset'"),
    ("data.dataset", "svhn", r"unknown dataset 'svhn'"),
    ("model.name", "alexnet", r"unknown model 'alexnet'"),
    ("stages.base.epochs", "many", r"stages\[0\] \(train 'base'\).epochs: must be a number"),
    ("stages.base.optimizer.lr", "-1", r"lr must be > 0"),
    ("stages.s1.targets", "[0.5, 1.2]", r"target 1.2 is impossible"),
    ("stages.s1.targets", "[0.5, 0.3]", r"targets must not decrease"),
    ("stages.s1.ifm", "true", r"option\(s\) \['ifm'\] do not apply to method 'spatial_winograd'"),
    ("stages.s2.targets", "[0.7]", r"give exactly one of amount, targets"),
    ("stages.s2.method", "pruneit", r"method: must be 'column' or 'magnitude' or"),
    ("stages.s1.overrides", "{features.0: 1.5}", r"override features.0: 1.5 is impossible"),
    ("stages.conv.stage", "quantize", r"unknown stage 'quantize'"),
    ("stages.conv.name", "s1", r"name already used by stages\[1\]"),
    ("stages.conv.domain", "spatial", r"method 'winograd_domain' cannot prune spatial-domain Winograd layers"),
    ("stages.s1.finetune.epochz", "1", r"unknown key 'epochz'; did you mean 'epochs'"),
    ("name", "a b", r"name 'a b' must be letters"),
    ("stages", "[]", r"stages is empty"),
    ("seed", "1.5", r"seed: must be an integer"),
])
def test_errors(path, value, message):
    with pytest.raises(ConfigError, match=message):
        parse_recipe(variant(path, value))


def test_stage_order_and_method_rules():
    spatial_after_convert = copy.deepcopy(BASE)
    spatial_after_convert["stages"].insert(3, {"stage": "prune", "name": "late", "method": "spatial_winograd",
                                               "amount": 0.5})
    with pytest.raises(ConfigError, match="put it before the convert stage"):
        parse_recipe(spatial_after_convert)
    relu = copy.deepcopy(BASE)
    relu["stages"][3] = {"stage": "prune", "name": "s2", "method": "winograd_relu", "densities": [0.5]}
    with pytest.raises(ConfigError, match="winograd_relu: true"):
        parse_recipe(relu)
    native = copy.deepcopy(BASE)
    native["stages"][3] = {"stage": "prune", "name": "s2", "method": "native", "sparsity": 0.5}
    with pytest.raises(ConfigError, match="add a finetune mapping"):
        parse_recipe(native)
    gradual = copy.deepcopy(BASE)
    gradual["stages"][1] = {"stage": "prune", "name": "s1", "method": "magnitude",
                            "gradual": {"final": 0.5, "end": 2}, "finetune": {"epochs": 1}}
    with pytest.raises(ConfigError, match=r"gradual.end \(2.0 epochs\) is after the fine-tune ends"):
        parse_recipe(gradual)
    with pytest.raises(ConfigError, match="missing 'stage'"):
        parse_recipe({**BASE, "stages": [{"name": "x"}]})


def test_overrides():
    data = apply_overrides(BASE, ["stages.s1.finetune.epochs=2", "stages.0.name=first", "data.root=/x",
                                  "stages.-1.plots=false"])
    assert data["stages"][1]["finetune"]["epochs"] == 2 and data["stages"][0]["name"] == "first"
    assert data["data"]["root"] == "/x" and data["stages"][-1]["plots"] is False
    assert BASE["stages"][0]["name"] == "base"                       # input untouched
    with pytest.raises(ConfigError, match="no item named 'nope'"):
        apply_overrides(BASE, ["stages.nope.epochs=1"])
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        apply_overrides(BASE, ["epochs"])
    with pytest.raises(ConfigError, match="out of range"):
        apply_overrides(BASE, ["stages.9.epochs=1"])


def test_missing_recipe_and_bad_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="bundled: .*fashion_mnist_spatial_winograd"):
        load_recipe("no_such_recipe")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="a recipe is a mapping"):
        load_recipe(bad)


def test_gradual_ramp_updates_at_least_min_times_on_small_data_sets():
    from sparsewino.recipes.schema import MIN_GRADUAL_UPDATES, GradualConfig
    gradual = GradualConfig(final=0.6, end=1.0, initial=0.2, every_steps=50)
    large = gradual.schedule(469)                       # Fashion-MNIST at batch 128: as written
    assert large.every == 50 and large.end == 469
    small = gradual.schedule(32)                        # 4000 images: 32 steps per epoch
    assert small.end == 32 and small.every == 32 // MIN_GRADUAL_UPDATES
    amounts = {small.amount_at(t) for t in range(40)}
    assert len(amounts) >= MIN_GRADUAL_UPDATES + 1 and small.amount_at(32) == 0.6
