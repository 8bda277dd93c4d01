"""A run is identified by what the user wrote: upgrades and result-neutral overrides keep resuming."""
import pytest
import yaml

from sparsewino.cli import main
from sparsewino.data import DatasetNotFoundError
from sparsewino.recipes import RunDirectoryError, load_recipe, parse_recipe, run_recipe
from sparsewino.recipes.schema import identity_changes, recipe_identity

QUIET = dict(progress=False, log=lambda message: None)
SMALL = ["model.args={widths: [4, M, 8]}", "stages.baseline.epochs=0.25"]


def smoke(extra=()):
    return load_recipe("fashion_mnist_spatial_winograd", SMALL + list(extra), smoke=True)


def test_identity_ignores_defaults_and_result_neutral_settings():
    def recipe(overrides=()):
        return load_recipe("fashion_mnist_spatial_winograd", overrides)

    def identity(overrides=()):
        return recipe_identity(recipe(overrides))

    base = identity()
    assert identity(["data.root=/elsewhere", "threads=1", "device=cpu", "description=x",
                     "stages.baseline.checkpoint_every=5", "stages.baseline.log_every=7",
                     "data.num_workers=2", "data.eval_batch_size=500"]) == base   # 500: the default
    changed = recipe(["stages.step1.targets=[0.4]", "seed=2", "stages.step2.ifm=null"])
    assert sorted(identity_changes(recipe(), changed)) == ["seed: 0 -> 2",
                                                           "stages.step1.targets: [0.3, 0.5, 0.6] -> [0.4]",
                                                           "stages.step2.ifm: True -> (not set)"]


def test_upgrades_that_add_defaulted_fields_keep_resuming(tmp_path):
    run_dir = tmp_path / "run"
    run_recipe(smoke(), run_dir, until=0, **QUIET)
    saved = run_dir / "recipe.yaml"
    data = yaml.safe_load(saved.read_text())
    # the recipe.yaml of an older version: fields added since (with defaults) are absent
    del data["data"]["num_workers"], data["data"]["validation"], data["stages"][0]["log_every"]
    data["stages"][1].pop("evaluate_after_pruning")
    saved.write_text(yaml.safe_dump(data, sort_keys=False))
    again = run_recipe(smoke(["data.root=/moved", "threads=1"]), run_dir, until=0, **QUIET)
    assert again.stages_run == [] and len(again.rows) == 1


def test_a_changed_recipe_says_what_changed(tmp_path):
    run_dir = tmp_path / "run"
    run_recipe(smoke(), run_dir, until=0, **QUIET)
    with pytest.raises(RunDirectoryError, match=r"different recipe; pass --fresh .*changed: "
                                                r"stages.baseline.optimizer.lr: 0\.05 -> 0\.1\)"):
        run_recipe(smoke(["stages.baseline.optimizer.lr=0.1"]), run_dir, until=0, **QUIET)
    saved = run_dir / "recipe.yaml"
    saved.write_text(saved.read_text().replace("stages:", "future_key: 1\nstages:"))
    with pytest.raises(RunDirectoryError, match="cannot be read by this version of sparsewino"):
        run_recipe(smoke(), run_dir, until=0, **QUIET)


def test_a_run_that_failed_at_start_does_not_lock_its_directory(tmp_path, write_mnist):
    recipe = {"name": "digits", "data": {"dataset": "mnist", "root": str(tmp_path / "missing"),
                                         "batch_size": 4, "augment": False},
              "model": {"name": "small_vgg", "args": {"widths": [4, "M", 8]}},
              "stages": [{"stage": "train", "name": "t", "epochs": 1}]}
    run_dir = tmp_path / "run"
    with pytest.raises(DatasetNotFoundError):
        run_recipe(parse_recipe(recipe), run_dir, **QUIET)
    assert (run_dir / "recipe.yaml").is_file()
    (tmp_path / "digits").mkdir()
    write_mnist(tmp_path / "digits", n_train=8, n_test=4)
    recipe["data"]["root"] = str(tmp_path / "digits")                 # the corrected command
    assert run_recipe(parse_recipe(recipe), run_dir, **QUIET).stages_run == ["t"]
    recipe["stages"][0]["epochs"] = 2                                 # now a step has finished
    with pytest.raises(RunDirectoryError, match="stages.t.epochs: 1.0 -> 2.0"):
        run_recipe(parse_recipe(recipe), run_dir, **QUIET)


def test_a_failed_start_is_taken_over_by_a_different_recipe(tmp_path, capsys):
    run_dir = tmp_path / "run"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {dataset: cifar10, root: /nonexistent}\nmodel: {name: small_vgg}\n"
                   "stages: [{stage: evaluate}]\n")
    assert main(["run", str(bad), "--run-dir", str(run_dir), "--quiet"]) == 1
    assert "CIFAR10 train split not found" in capsys.readouterr().err
    assert (run_dir / "recipe.yaml").is_file()
    good = tmp_path / "good.yaml"
    good.write_text("name: x\ndata: {dataset: fake, options: {num_samples: 32}}\n"
                    "model: {name: small_vgg, args: {widths: [4, M, 8]}}\nstages: [{stage: evaluate}]\n")
    assert main(["run", str(good), "--run-dir", str(run_dir), "--quiet"]) == 0
    assert "baseline accuracy" in capsys.readouterr().out
