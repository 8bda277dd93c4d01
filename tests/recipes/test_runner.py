"""End-to-end run of the demo recipe on fake data: every stage, report, resume, run-directory rules."""
import json

import pytest
import torch

from sparsewino.nn import WinogradConv2d
from sparsewino.prune import get_grad_scale, get_mask
from sparsewino.recipes import RunDirectoryError, load_model, load_recipe, run_recipe

OVERRIDES = ["model.args={widths: [4, 4, M, 8, 8, M, 8]}"]
QUIET = dict(progress=False, log=lambda message: None)


def demo(extra=()):
    return load_recipe("fashion_mnist_spatial_winograd", OVERRIDES + list(extra), smoke=True)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    torch.manual_seed(0)
    return run_recipe(demo(), run_dir, **QUIET)


def test_all_stages_and_report(finished):
    kinds = [r["kind"] for r in finished.rows]
    assert kinds == ["train", "prune", "prune", "prune", "convert", "prune", "evaluate", "compile", "benchmark"]
    step1 = [r for r in finished.rows if r["stage"] == "step1"]
    assert [r["target"] for r in step1] == [0.3, 0.5, 0.6]
    final, compiled, bench = finished.rows[-3:]
    assert 0.6 < final["winograd_sparsity"] <= 0.7 and final["reduction_vs_direct"] > 4
    assert final["spatial_sparsity"] is None                     # Winograd-domain weights only
    assert compiled["compiled_max_abs_error"] < 1e-3 and compiled["compiled_accuracy"] == final["accuracy"]
    assert bench["dense_ms"] > 0 and bench["speedup_vs_dense"] == bench["dense_ms"] / bench["compiled_ms"]
    report = finished.report
    assert report.name == "summary.md" and report.is_file()
    for name in ("results.csv", "results.json", "layers.json", "accuracy_vs_sparsity.png",
                 "layer_sparsity.png", "position_sparsity.png"):
        assert (report.parent / name).is_file(), name
    assert json.loads((finished.run_dir / "results.json").read_text()) == finished.rows


def test_saved_model_rebuilds_with_masks_and_gradient_scales(finished):
    model, checkpoint = load_model(finished.run_dir / "model.pt")
    layers = [m for m in model.modules() if isinstance(m, WinogradConv2d)]
    assert len(layers) == 5 and all(layer.domain == "winograd" for layer in layers)
    assert all(get_mask(layer) is not None for layer in layers)
    assert get_grad_scale(layers[1]) is not None                 # IFM gradient scaling survives
    assert checkpoint["input_shape"] == [1, 1, 28, 28]
    sparsity = sum(int((l.weight == 0).sum()) for l in layers) / sum(l.weight.numel() for l in layers)
    assert sparsity > 0.6


def test_rerun_skips_finished_steps(finished):
    again = run_recipe(demo(), finished.run_dir, **QUIET)
    assert again.stages_run == ["report"]                         # only the report is rewritten
    assert again.rows == finished.rows and again.report is not None


def test_interrupted_run_resumes(tmp_path):
    run_dir = tmp_path / "run"
    partial = run_recipe(demo(), run_dir, until="step1", **QUIET)
    assert partial.stages_run == ["baseline", "step1"]
    (run_dir / "stages" / "01-step1" / "unit-02.pt").unlink()    # as if killed during the last target
    rest = run_recipe(demo(), run_dir, until="to_winograd", **QUIET)
    assert rest.stages_run == ["step1", "to_winograd"]
    assert [r["step"] for r in rest.rows if r["stage"] == "step1"] == ["target 0.30", "target 0.50", "target 0.60"]


def test_run_directory_rules(tmp_path):
    run_dir = tmp_path / "run"
    run_recipe(demo(), run_dir, until=0, **QUIET)
    with pytest.raises(RunDirectoryError, match="different recipe; pass --fresh"):
        run_recipe(demo(["seed=3"]), run_dir, until=0, **QUIET)
    fresh = run_recipe(demo(["seed=3"]), run_dir, until=0, fresh=True, **QUIET)
    assert fresh.stages_run == ["baseline"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="not a sparsewino run directory"):
        run_recipe(demo(), other, **QUIET)
    with pytest.raises(ValueError, match="no such stage"):
        run_recipe(demo(), tmp_path / "x", until="nope", **QUIET)


def test_gradual_schedule_and_global_scope(tmp_path):
    from sparsewino.recipes import parse_recipe
    recipe = parse_recipe({
        "name": "gradual", "data": {"dataset": "fake", "batch_size": 16, "options": {"num_samples": 64}},
        "model": {"name": "small_vgg", "args": {"widths": [4, "M", 8]}},
        "stages": [
            {"stage": "train", "name": "t", "epochs": 0.25},
            {"stage": "prune", "name": "g", "method": "magnitude", "scope": "global",
             "gradual": {"final": 0.6, "end": 1.0, "every_steps": 1}, "finetune": {"epochs": 1.0}},
            {"stage": "prune", "name": "s", "method": "structured", "granularity": "feature_map",
             "amount": 0.25, "include": ["features.4"]}]})
    result = run_recipe(recipe, tmp_path / "run", **QUIET)
    gradual, structured = result.rows[1], result.rows[2]
    assert gradual["step"] == "gradual to 0.60" and gradual["spatial_sparsity"] == pytest.approx(0.6, abs=0.01)
    model, _ = load_model(tmp_path / "run" / "model.pt")
    conv = model.features[4]
    assert int((conv.weight.flatten(1).abs().sum(1) == 0).sum()) >= 2          # 2 of 8 feature maps
    assert structured["spatial_sparsity"] > gradual["spatial_sparsity"]


def test_interrupted_gradual_finetune_resumes(tmp_path, monkeypatch):
    from sparsewino.prune import PruningCallback
    from sparsewino.recipes import parse_recipe
    recipe = parse_recipe({
        "name": "gradual-resume", "data": {"dataset": "fake", "batch_size": 16, "options": {"num_samples": 64}},
        "model": {"name": "small_vgg", "args": {"widths": [4, "M", 8]}},
        "stages": [
            {"stage": "train", "name": "t", "epochs": 0.25},
            {"stage": "prune", "name": "g", "method": "magnitude",
             "gradual": {"final": 0.6, "end": 1.0, "every_steps": 1},
             "finetune": {"epochs": 2.0, "batch_size": 16, "checkpoint_every": 1}}]})
    after_step = PruningCallback.after_step

    def crash(self, model, step):
        after_step(self, model, step)
        if step == 4:
            raise KeyboardInterrupt
    monkeypatch.setattr(PruningCallback, "after_step", crash)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, tmp_path / "run", **QUIET)
    assert (tmp_path / "run" / "stages" / "01-g" / "unit-00-train.pt").is_file()
    monkeypatch.setattr(PruningCallback, "after_step", after_step)
    resumed = run_recipe(recipe, tmp_path / "run", **QUIET)     # the masks come back with the weights
    assert resumed.stages_run == ["g"]
    assert resumed.rows[-1]["spatial_sparsity"] == pytest.approx(0.6, abs=0.01)


def test_recipe_prunes_linear_layers_by_magnitude(tmp_path):
    from sparsewino.prune import get_mask
    from sparsewino.recipes import parse_recipe
    recipe = parse_recipe({
        "name": "fc", "data": {"dataset": "fake", "batch_size": 16, "options": {"num_samples": 64}},
        "model": {"name": "small_vgg", "args": {"widths": [4, "M", 8]}},
        "stages": [
            {"stage": "train", "name": "t", "epochs": 0.25},
            {"stage": "prune", "name": "convs", "method": "magnitude", "amount": 0.5},
            {"stage": "prune", "name": "fc", "method": "magnitude", "layers": "linear", "amount": 0.8,
             "finetune": {"epochs": 0.25}}]})
    result = run_recipe(recipe, tmp_path / "run", **QUIET)
    convs, fc = result.rows[1], result.rows[2]
    assert "linear_sparsity" not in convs and convs["spatial_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert fc["linear_sparsity"] == pytest.approx(0.8, abs=0.01)
    assert fc["spatial_sparsity"] == convs["spatial_sparsity"]          # convolutions untouched
    model, _ = load_model(tmp_path / "run" / "model.pt")               # the mask comes back
    linear = model.classifier[1]
    assert get_mask(linear) is not None and float((linear.weight == 0).float().mean()) == pytest.approx(0.8, abs=0.01)
