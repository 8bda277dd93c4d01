"""--smoke checks a recipe in seconds: fake data, a few steps, and narrow models."""
from sparsewino.models import create_model
from sparsewino.recipes import load_recipe
from sparsewino.recipes.loading import SMOKE_WIDTH


def test_smoke_narrows_models_with_a_width_option():
    recipe = load_recipe("imagenet_resnet18_spatial_winograd", smoke=True)
    assert recipe.model.args["width"] == SMOKE_WIDTH and recipe.data.dataset == "fake"
    full = sum(p.numel() for p in create_model("resnet18_max", num_classes=1000).parameters())
    smoke = sum(p.numel() for p in create_model("resnet18_max", num_classes=1000, **recipe.model.args).parameters())
    assert smoke < full / 20                           # a whole ResNet-18 pruned in a minute; this in seconds
    kept = load_recipe("imagenet_resnet18_spatial_winograd", ["model.args={width: 4}"], smoke=True)
    assert kept.model.args["width"] == 4               # the recipe's own width wins
    assert "width" not in load_recipe("fashion_mnist_native", smoke=True).model.args   # no such option
    assert "width" not in load_recipe("imagenet_resnet18_spatial_winograd").model.args  # only smoke
