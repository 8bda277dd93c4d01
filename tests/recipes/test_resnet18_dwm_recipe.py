"""The bundled ResNet-18 CIFAR recipe with DWM stride-2 layers runs end to end (smoke) and prunes the pieces."""
import torch

from sparsewino.engine import SparseDecomposedConv2d
from sparsewino.nn import WinogradConv2d
from sparsewino.recipes import load_recipe, run_recipe
from sparsewino.recipes.architecture import build_model, load_model


def test_smoke_run_prunes_and_compiles_the_decomposed_stride2_layers(tmp_path):
    torch.manual_seed(0)
    recipe = load_recipe("cifar10_resnet18_spatial_winograd", ["model.args={width: 4}"], smoke=True)
    result = run_recipe(recipe, tmp_path / "run", progress=False, log=lambda m: None)
    assert result.stages_run == [s.name for s in recipe.stages]
    model, checkpoint = load_model(tmp_path / "run")
    strided = [m for m in model.modules() if isinstance(m, WinogradConv2d) and m.stride == (2, 2)]
    assert len(strided) == 3
    for layer in strided:
        assert layer.domain == "winograd" and layer.decomposition.describe() == "stride 2x2: 4 pieces 2x2"
        assert 0.5 < float((layer.weight == 0).double().mean()) <= 0.7 + 1e-6    # step 2 on the pieces
    assert not any(isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1) for m in model.modules())
    step2 = [r for r in result.rows if r["stage"] == "step2"]
    assert step2 and 0.6 < step2[-1]["winograd_sparsity"] <= 0.7 + 1e-6
    compiled = [r for r in result.rows if r["stage"] == "compile"]
    assert compiled, result.rows
    # the compiled model runs the stride-2 layers decomposed in the engine
    from sparsewino import engine
    fast = engine.compile(model)
    assert sum(isinstance(m, SparseDecomposedConv2d) for m in fast.modules()) == 3
    assert not fast.compile_report.fallbacks


def test_old_architecture_records_rebuild_without_decomposition():
    """A record written before DWM (no ``decompose``) left strided convolutions alone: it is
    rebuilt the same way, so its saved weights still fit."""
    record = {"model": "resnet18_cifar", "args": {"width": 4}, "in_channels": 3, "num_classes": 10,
              "transforms": [{"op": "convert", "tile": 4, "domain": "winograd"}]}
    model = build_model(record)
    assert isinstance(model.layer2[0].branch.conv1, torch.nn.Conv2d)
    record["transforms"][0]["decompose"] = "auto"
    assert isinstance(build_model(record).layer2[0].branch.conv1, WinogradConv2d)
