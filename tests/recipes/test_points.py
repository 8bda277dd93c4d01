"""Interpolation points chosen in a recipe: Lavin's points reach the layers and change M̂."""
import pytest
import torch

from sparsewino.nn import WinogradConv2d
from sparsewino.recipes import load_model, load_recipe, run_recipe
from sparsewino.schema import ConfigError
from sparsewino.winograd import LAVIN_POINTS, importance_factor_matrix

OVERRIDES = ["model.args={widths: [4, 4, M, 8]}"]


def test_lavin_points_reach_the_converted_layers_and_the_checkpoint(tmp_path):
    recipe = load_recipe("fashion_mnist_spatial_winograd", OVERRIDES + [
        "stages=[{stage: train, name: t, epochs: 0.01}, "
        "{stage: convert, name: to_winograd, domain: winograd, points: lavin}, "
        "{stage: prune, name: step2, method: winograd_domain, amount: 0.5}]"], smoke=True)
    torch.manual_seed(0)
    result = run_recipe(recipe, tmp_path / "run", progress=False, log=lambda message: None)
    model, _ = load_model(result.run_dir / "model.pt")
    layers = [m for m in model.modules() if isinstance(m, WinogradConv2d)]
    assert layers and all(a.points == LAVIN_POINTS[6] for layer in layers for a in layer.algorithms)
    assert float(importance_factor_matrix(layers[0].algorithms, normalize=True).max()) == \
        pytest.approx(20.238, abs=0.001)        # Lavin's M̂ (the default points give 20.50)


@pytest.mark.parametrize("points, message", [
    ("lavni", "not a point set"), ([0, 1], "needs n - 1 = 5"), ([0, 1, -1, 2, 2], "")])
def test_bad_points_are_refused_before_anything_runs(points, message):
    with pytest.raises(ConfigError, match=f"points.*{message}"):
        load_recipe("fashion_mnist_spatial_winograd", [f"stages.to_winograd.points={points}"])
    with pytest.raises(ConfigError, match="Lavin's points are defined for F.2,3. and F.4,3."):
        load_recipe("fashion_mnist_spatial_winograd", ["stages.to_winograd.points=lavin", "tile=6"])
