"""Stage lines of a run: labels without repetition, and the time left in the whole run."""
import pytest

from sparsewino.recipes import parse_recipe, run_recipe
from sparsewino.recipes.progress import RunClock, stage_label, training_steps

RECIPE = {"name": "progress", "data": {"dataset": "fake", "batch_size": 16, "options": {"num_samples": 64}},
          "model": {"name": "small_vgg", "args": {"widths": [4, "M", 8]}},
          "stages": [{"stage": "train", "name": "first", "epochs": 0.5, "batch_size": 16},
                     {"stage": "prune", "name": "step", "method": "magnitude", "targets": [0.3, 0.5],
                      "finetune": {"epochs": 0.25, "batch_size": 16}},
                     {"stage": "compile"}]}


class SlowClock:
    """time.perf_counter of the runner: every call 10 s later (a slow machine, measured fast)."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 10.0
        return self.now


def test_stage_lines_give_the_time_left_in_the_run(tmp_path, monkeypatch):
    import sparsewino.recipes.runner as runner
    monkeypatch.setattr(runner, "time", SlowClock())
    lines = []
    run_recipe(parse_recipe(RECIPE), tmp_path / "run", progress=False, log=lines.append)
    starts = [line for line in lines if line.startswith("[")]
    assert starts[0] == "[1/3] train first"                         # no speed measured yet
    assert starts[1].startswith("[2/3] prune step, about ") and starts[1].endswith(" left in the training stages")
    assert starts[2] == "[3/3] compile"                              # not "compile compile"
    assert any(line.startswith("  compile, ") for line in lines)


def test_training_steps_and_estimate():
    recipe = parse_recipe(RECIPE)
    per_epoch = lambda batch_size: 64 // batch_size                 # noqa: E731
    assert [training_steps(s, per_epoch) for s in recipe.stages] == [2, 2, 0]
    assert training_steps(recipe.stages[1], per_epoch, first_unit=1) == 1
    clock = RunClock()
    assert clock.seconds_left(recipe.stages, per_epoch) is None
    clock.record(6.0, 2)
    assert clock.seconds_left(recipe.stages[1:], per_epoch) == 6.0
    assert clock.describe_left(recipe.stages[2:], per_epoch) == ""
    assert [stage_label(s) for s in recipe.stages] == ["train first", "prune step", "compile"]


def test_the_time_left_prices_in_the_work_between_training_steps():
    recipe = parse_recipe({"name": "t", "data": {"dataset": "fake", "batch_size": 8},
                           "model": {"name": "small_vgg"},
                           "stages": [{"stage": "train", "name": "b", "epochs": 1.0}]})
    now = [100.0]
    clock = RunClock(clock=lambda: now[0])
    clock.record(10.0, 100)                       # 100 steps trained in 10 s ...
    now[0] += 30.0                                # ... in 30 s of run: pruning, evaluations
    left = clock.seconds_left(recipe.stages, lambda batch: 50)
    assert left == pytest.approx(50 * 30.0 / 100)            # 0.3 s per step, not 0.1
    assert clock.describe_left(recipe.stages, lambda batch: 50).endswith("left in the training stages")
    clock.record(40.0, 100)                       # a slower stage (Winograd-domain fine-tuning)
    assert clock.seconds_left(recipe.stages, lambda batch: 50) == pytest.approx(50 * 0.4)
