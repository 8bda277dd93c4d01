"""The bundled recipe of ours is the study cell whose measured numbers the docs quote."""
from sparsewino.recipes import load_recipe
from sparsewino.recipes.schema import recipe_identity
from sparsewino.recipes.study import load_study

#: bundled recipe -> (study, cell) whose runs measured it (docs/results.md, docs/data/)
MEASURED_BY = {"fashion_mnist_gradual_distill": ("fashion_mnist_ours", "gd"),
               "fashion_mnist_gradual_step2_distill": ("fashion_mnist_ours", "gd2")}


def _training(recipe) -> dict:
    """What decides a run's accuracy and sparsity: data, model, seed, tile and the stages up to
    the final evaluation (compile, benchmark and report only measure)."""
    identity = recipe_identity(recipe)
    stages = [s for s in identity["stages"] if s["stage"] not in ("compile", "benchmark", "report")]
    return {**{k: v for k, v in identity.items() if k not in ("name", "description", "stages")},
            "stages": stages}


def test_bundled_recipe_trains_as_the_measured_study_cell():
    for name, (study_name, cell) in MEASURED_BY.items():
        study = load_study(study_name)
        runs = [run for run in study.runs if run.cell == cell and run.seed == 0]
        baseline = [run for run in study.runs if run.cell == "baseline" and run.seed == 0]
        assert len(runs) == 1 == len(baseline)
        bundled = _training(load_recipe(name))
        measured = _training(runs[0].recipe)
        # the study cell starts from the shared baseline's checkpoint instead of its train stage
        assert bundled["stages"][0] == _training(baseline[0].recipe)["stages"][0]
        assert bundled["stages"][1:] == measured["stages"]
        assert {k: v for k, v in bundled.items() if k not in ("stages", "model")} == \
               {k: v for k, v in measured.items() if k not in ("stages", "model")}
        assert bundled["model"]["args"] == measured["model"]["args"]


def test_the_demo_recipe_is_the_measured_recipe_up_to_its_first_step2_stage():
    """`make demo` runs gd2 cut after step2a: the same training up to there, so gd2's measured
    step2a numbers (3 seeds) are the demo's."""
    from sparsewino.demo import RECIPE
    assert RECIPE == "fashion_mnist_gradual_step2_distill_short"
    full, short = _training(load_recipe("fashion_mnist_gradual_step2_distill")), _training(load_recipe(RECIPE))
    names = [s["name"] for s in full["stages"]]
    cut = names.index("step2a") + 1
    assert short["stages"] == full["stages"][:cut] + full["stages"][names.index("step2b") + 1:]
    assert [s["name"] for s in short["stages"]][-1] == "final"
    assert {k: v for k, v in short.items() if k != "stages"} == {k: v for k, v in full.items() if k != "stages"}
