"""Studies: a grid of ordinary resumable runs sharing a baseline per seed, one combined report."""
import csv
import json

import pytest
import yaml

from sparsewino.cli import main
from sparsewino.recipes import run_recipe
from sparsewino.recipes.rundir import RunDirectoryError
from sparsewino.recipes.study import StudyError, load_study, parse_study, run_study

FAKE = {"dataset": "fake", "batch_size": 16, "eval_batch_size": 32,
        "options": {"num_samples": 64, "num_classes": 4, "image_size": 12}}
STAGES = [
    {"stage": "train", "name": "baseline", "epochs": 0.5, "optimizer": {"name": "sgd", "lr": 0.05}},
    {"stage": "prune", "name": "step1", "method": "spatial_winograd", "targets": [0.3, 0.5],
     "finetune": {"epochs": 0.25}},
    {"stage": "evaluate", "name": "final"},
]
RECIPE = {"name": "cell", "data": FAKE, "model": {"name": "small_vgg", "args": {"widths": [4, "M", 4]}},
          "stages": STAGES}


def _study(tmp_path, **changes):
    (tmp_path / "cell.yaml").write_text(yaml.safe_dump(RECIPE))
    magnitude = {**RECIPE, "stages": [STAGES[0], {**STAGES[1], "name": "mag", "method": "magnitude"},
                                      STAGES[2]]}
    (tmp_path / "mag.yaml").write_text(yaml.safe_dump(magnitude))
    study = {"name": "tiny", "seeds": [0, 1], "baseline": {"recipe": "cell.yaml", "stage": "baseline"},
             "cells": [{"name": "step1", "recipe": "cell.yaml", "method": "step 1"},
                       {"name": "mag", "recipe": "mag.yaml",
                        "grid": {"stages.mag.finetune.optimizer.lr": [0.01, 0.001]}}]}
    study.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_study_runs_every_cell_shares_the_baseline_and_reports(tmp_path):
    path = _study(tmp_path)
    study = load_study(path, tmp_path / "out")
    assert [r.key for r in study.runs] == [
        "baseline-seed0", "baseline-seed1", "step1-seed0", "mag.lr-0.01-seed0", "mag.lr-0.001-seed0",
        "step1-seed1", "mag.lr-0.01-seed1", "mag.lr-0.001-seed1"]
    cell = study.runs[2].recipe
    assert [s.name for s in cell.stages] == ["step1", "final"]       # the baseline stage is shared
    assert cell.model.checkpoint.endswith("out/baseline/seed-0/model.pt") and cell.seed == 0
    # an interrupted cell: its first step finished, then the study continues it
    run_recipe(study.runs[0].recipe, study.runs[0].run_dir, progress=False, log=lambda m: None)
    partial = study.runs[2]
    run_recipe(partial.recipe, partial.run_dir, until="step1", progress=False, log=lambda m: None)
    (partial.run_dir / "stages" / "00-step1" / "unit-01.pt").unlink()   # as if killed mid-stage
    rows = json.loads((partial.run_dir / "results.json").read_text())
    (partial.run_dir / "results.json").write_text(json.dumps(rows[:1]))
    assert partial.status() == "partial"
    lines = []
    result = run_study(study, log=lines.append)
    assert not result.failed and set(result.status.values()) == {"finished"}
    assert "2 finished" not in lines[0] and "baseline-seed0" not in " ".join(lines[1:3])
    assert any("step1-seed0: continuing" in line for line in lines)
    report = result.report.parent
    steps = list(csv.DictReader(open(report / "steps.csv")))
    assert {r["cell"] for r in steps} == {"baseline", "step1", "mag.lr-0.01", "mag.lr-0.001"}
    assert list(steps[0])[:5] == ["cell", "method", "seed", "stages.mag.finetune.optimizer.lr", "index"]
    assert len([r for r in steps if r["cell"] == "step1"]) == 2 * 3       # 2 seeds x (2 targets + final)
    summary = (report / "summary.md").read_text()
    assert "| step1 | step 1 | 2/2 |" in summary and "±" in summary and "## At equal accuracy" in summary
    assert "(busy)" not in summary                 # no benchmark ran: no footnote about one
    finals = json.loads((report / "summary.json").read_text())["finals"]
    step1 = next(f for f in finals if f["cell"] == "step1")
    assert step1["runs"] == 2 and step1["delta"] is not None and step1["winograd_sparsity"] > 0.3
    for name in ("accuracy_vs_sparsity.png", "accuracy_vs_multiplications.png", "runs.csv", "steps.json"):
        assert (report / name).is_file()
    again = []
    run_study(study, log=again.append)                                  # everything is skipped
    assert "8 finished, 0 to run" in again[0]


def test_bad_study_files_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(StudyError, match="seeds: a non-empty list"):
        load_study(_study(tmp_path, seeds=[]), tmp_path / "out")
    with pytest.raises(StudyError, match="no_such.yaml.*neither a file nor a bundled recipe"):
        load_study(_study(tmp_path, cells=[{"name": "x", "recipe": "no_such.yaml"}]), tmp_path / "o")
    conflict = {"name": "x", "recipe": "cell.yaml", "set": {"stages.step1.finetune.epochs": 0.5}}
    with pytest.raises(StudyError, match="conflicts with the study's set"):
        load_study(_study(tmp_path, set={"stages.step1.finetune.epochs": 0.25}, cells=[conflict]),
                   tmp_path / "o")
    twice = {"name": "x", "recipe": "cell.yaml", "set": {"stages.step1.targets": [0.3]},
             "grid": {"stages.step1.targets": [[0.5]]}}
    with pytest.raises(StudyError, match="also set by the cell"):
        load_study(_study(tmp_path, cells=[twice]), tmp_path / "o")
    apart = {"name": "x", "recipe": "cell.yaml", "set": {"stages.baseline.epochs": 1}}
    with pytest.raises(StudyError, match="cannot share the study's baseline.*epochs"):
        load_study(_study(tmp_path, cells=[apart]), tmp_path / "o")
    with pytest.raises(StudyError, match="cannot be overridden"):
        load_study(_study(tmp_path, set={"seed": 3}), tmp_path / "o")
    bad_recipe = {"name": "x", "recipe": "cell.yaml", "set": {"stages.step1.targets": [0.5, 0.3]}}
    with pytest.raises(StudyError, match="targets must not decrease"):
        load_study(_study(tmp_path, cells=[bad_recipe]), tmp_path / "o")
    other = tmp_path / "other"
    other.mkdir()
    (other / ".sparsewino-study").write_text("someone_else\n")
    with pytest.raises(RunDirectoryError, match="holds study 'someone_else'"):
        run_study(load_study(_study(tmp_path), other), log=lambda m: None)
    with pytest.raises(StudyError, match="--cell 'nope'"):
        load_study(_study(tmp_path), tmp_path / "o").select(["nope"])
    with pytest.raises(StudyError, match="study is a mapping"):
        parse_study([1, 2])


def test_cli_check_lists_runs_and_rejects_bad_input(tmp_path, capsys):
    path = _study(tmp_path)
    assert main(["study", str(path), "--run-dir", str(tmp_path / "o"), "--check", "--cell", "mag"]) == 0
    out = capsys.readouterr().out
    assert "6 runs" in out and "mag.lr-0.001-seed1" in out and "not started" in out
    assert main(["study", str(_study(tmp_path, seeds=[])), "--check"]) == 1
    assert "seeds: a non-empty list" in capsys.readouterr().err
    assert main(["study", "--list"]) == 0
    assert "fashion_mnist_methods" in capsys.readouterr().out
    assert main(["study", "fashion_mnist_methods", "--check", "--run-dir", str(tmp_path / "m")]) == 0
    assert "45 runs" in capsys.readouterr().out


def test_a_smoke_study_runs_every_recipe_on_fake_data(tmp_path, capsys):
    from sparsewino.cli import main
    study = load_study("fashion_mnist_methods", smoke=True)
    assert study.run_dir.name == "fashion_mnist_methods-smoke"
    assert {run.recipe.data.dataset for run in study.runs} == {"fake"}
    assert {run.key for run in study.runs} == {run.key for run in load_study("fashion_mnist_methods").runs}
    out = tmp_path / "smoke"
    assert main(["study", "fashion_mnist_methods", "--smoke", "--quiet", "--cell", "magnitude",
                 "--seed", "0", "--run-dir", str(out)]) == 0
    assert (out / "baseline" / "seed-0" / "model.pt").is_file()


def test_budget_refuses_a_cell_that_fine_tunes_more_or_less(tmp_path):
    from sparsewino.recipes.study import finetune_epochs
    study = load_study(_study(tmp_path, budget={"finetune_epochs": 0.5}))   # 2 targets x 0.25
    assert all(finetune_epochs(run.recipe) == (0.5, 0.0) for run in study.runs if run.cell != "baseline")
    with pytest.raises(StudyError, match=r"step1.*fine-tune 0.5 epochs in all, the study's budget is 1"):
        load_study(_study(tmp_path, budget={"finetune_epochs": 1}))
    for bad in ({"epochs": 4}, {"finetune_epochs": 0}, 4):
        with pytest.raises(StudyError, match="budget"):
            load_study(_study(tmp_path, budget=bad))


@pytest.mark.parametrize("name", ["fashion_mnist_equal", "fashion_mnist_equal_wide"])
def test_equal_budget_studies_give_every_cell_the_same_fine_tuning(name):
    from sparsewino.recipes.study import finetune_epochs
    study = load_study(name)
    cells = [run for run in study.runs if run.cell != "baseline"]
    assert len(cells) == 8 * 3 * 3 and len(study.runs) == len(cells) + 3
    for run in cells:
        pruning, other = finetune_epochs(run.recipe)
        assert pruning == 4.0, run.key
        assert other == (3.0 if run.cell.startswith("winograd_relu") else 0.0), run.key
        final = [s for s in run.recipe.stages if getattr(s, "gradual", None) is not None][-1].gradual.final
        assert run.key.split("final-")[1].startswith(str(final)), run.key
    widths = {tuple(run.recipe.model.args["widths"]) for run in study.runs}
    assert widths == {(32, 32, "M", 64, 64, "M", 128) if name.endswith("wide") else (16, 16, "M", 32, 32, "M", 64)}
    lavin = [s for run in cells if run.cell.startswith("step1_step2") for s in run.recipe.stages
             if getattr(s, "kind", "") == "convert"]
    assert lavin and all(s.points == "lavin" for s in lavin)
    # step2_block8 is step2 but for its blocks: the two cells pair by seed and target
    by_key = {run.key: run for run in cells}
    blocked = [run for run in cells if run.cell.startswith("step2_block8")]
    assert len(blocked) == 9
    for run in blocked:
        plain = by_key[run.key.replace("step2_block8", "step2")]
        stage, plain_stage = (next(s for s in r.recipe.stages if s.name == "step2")
                              for r in (run, plain))
        assert stage.options.block == 8 and plain_stage.options.block is None
        assert stage.gradual == plain_stage.gradual and stage.finetune == plain_stage.finetune


def test_equal_budget_native_and_winograd_relu_cells_run_on_fake_data(tmp_path):
    out = tmp_path / "smoke"
    for cell in ("native", "winograd_relu"):
        assert main(["study", "fashion_mnist_equal", "--smoke", "--quiet", "--cell", cell,
                     "--seed", "0", "--run-dir", str(out)]) == 0
    rows = json.loads((out / "cells" / "native.final-0.6" / "seed-0" / "results.json").read_text())
    assert next(r for r in rows if r["stage"] == "native")["step"].startswith("native gradual -> 0.60")


def test_with_jobs_a_cell_starts_once_its_own_baseline_finishes(tmp_path, monkeypatch):
    """Seed 0's cells do not wait for seed 1's (slow) baseline, and no cell starts before its
    own seed's baseline has finished."""
    import threading
    import time

    import sparsewino.recipes.study as study_module
    study = load_study(_study(tmp_path))
    finished, events, lock = set(), [], threading.Lock()
    durations = {"baseline-seed0": 0.05, "baseline-seed1": 0.8}

    def fake_run(run, recipe_path, log_file, threads):
        with lock:
            events.append(("start", run.key, time.monotonic()))
        time.sleep(durations.get(run.key, 0.05))
        with lock:
            events.append(("end", run.key, time.monotonic()))
            finished.add(run.key)

    monkeypatch.setattr(study_module, "_run_subprocess", fake_run)
    monkeypatch.setattr(study_module.StudyRun, "status",
                        lambda self: "finished" if self.key in finished else "not started")
    result = run_study(study, jobs=2, report=False, log=lambda message: None)
    assert not result.failed and len(finished) == len(study.runs)
    when = {(kind, key): t for kind, key, t in events}
    cells = {key for _, key, _ in events if not key.startswith("baseline")}
    for key in cells:
        assert when[("start", key)] >= when[("end", f"baseline-seed{key[-1]}")], key
    first_seed0 = min(when[("start", key)] for key in cells if key.endswith("seed0"))
    assert first_seed0 < when[("end", "baseline-seed1")]
