"""The first steps of every bundled recipe (through its first pruning stage) on tiny fake data."""
import pytest
import torch

from sparsewino.recipes import bundled_recipes, load_recipe, run_recipe
from sparsewino.recipes.schema import PruneStage

NARROW = {"small_vgg": "{widths: [4, 4, M, 8, 8, M, 8]}", "vgg_nagadomi": "{width: 4, hidden: 16}",
          "convpool_cnn_c": "{width: 4}", "resnet18_max": "{width: 4}", "resnet18_cifar": "{width: 4}",
          "c3d_small": "{widths: [4, P, 6, M, 8]}"}


@pytest.mark.parametrize("name", sorted(bundled_recipes()))
def test_first_steps_run(name, tmp_path):
    torch.manual_seed(0)
    model_name = load_recipe(name).model.name
    recipe = load_recipe(name, [f"model.args={NARROW[model_name]}"], smoke=True)
    first_prune = next(i for i, s in enumerate(recipe.stages) if isinstance(s, PruneStage))
    result = run_recipe(recipe, tmp_path / "run", until=first_prune, progress=False, log=lambda m: None)
    assert result.stages_run == [s.name for s in recipe.stages[:first_prune + 1]]
    stage = recipe.stages[first_prune]
    rows = [r for r in result.rows if r["stage"] == stage.name]
    expected_rows = 1 if stage.method == "native" or stage.gradual else len(stage.target_list())
    assert len(rows) == expected_rows
    for row in result.rows:
        if "accuracy" in row:
            assert 0.0 <= row["accuracy"] <= 1.0
    last = rows[-1]
    pruned = last["winograd_sparsity"] if stage.method != "magnitude" else last["spatial_sparsity"]
    assert pruned > 0.05, (name, last)
    if stage.method in ("spatial_winograd", "winograd_domain", "winograd_relu"):
        # the model total mixes in layers kept at lower sparsity (first conv, overrides, skipped layers)
        assert pruned <= stage.target_list()[-1] + 1e-6
    if stage.method == "winograd_relu":
        # Liu et al.'s measure: only products with a non-zero weight and a non-zero ReLU-ed input
        assert 0 < last["activation_density"] < 1 and last["reduction_dynamic"] > 1
