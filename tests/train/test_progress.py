"""Progress without a terminal: a log line every tenth of a run, with the time left."""
import logging
import sys
from pathlib import Path

import pytest

from sparsewino.train import fit
from sparsewino.train.progress import PROGRESS_LOGGER, ProgressLines, format_duration

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import tiny_config, tiny_loaders, tiny_model  # noqa: E402


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def records():
    """Every progress record, whatever handlers the CLI installed before."""
    logger = logging.getLogger(PROGRESS_LOGGER)
    caught = []
    handler = logging.Handler()
    handler.emit = caught.append
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield caught
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_a_line_every_tenth_with_the_time_left(records):
    clock = FakeClock()
    lines = ProgressLines("baseline", total_steps=100, steps_per_epoch=50, min_interval=0, clock=clock)
    out = []
    for step in range(1, 101):
        clock.now += 1.0                                  # one second per step
        out.append(lines.update(step, loss=0.5))
    shown = [line for line in out if line]
    assert len(shown) == 10 and [r.getMessage() for r in records] == shown
    assert shown[0] == "baseline: 10% (step 10/100, epoch 0.20/2.00), loss 0.5, 10 s, about 90 s left"
    assert shown[-1] == "baseline: 100% (step 100/100, epoch 2.00/2.00), loss 0.5, 1.7 min"


def test_lines_are_spaced_in_time_and_resume_counts_only_new_steps(records):
    clock = FakeClock()
    lines = ProgressLines("ft", total_steps=100, start_step=50, min_interval=25, clock=clock)
    shown = []
    for step in range(51, 101):
        clock.now += 1.0
        shown.append(lines.update(step))
    shown = [line for line in shown if line]
    assert [line.split("(")[1].split(")")[0] for line in shown] == ["step 60/100", "step 90/100",
                                                                    "step 100/100"]
    assert "about 40 s left" in shown[0]                 # 10 new steps took 10 s; 40 to go


def test_format_duration():
    assert [format_duration(s) for s in (5, 150, 7200)] == ["5 s", "2.5 min", "2.0 h"]


def test_fit_logs_progress_when_stdout_is_not_a_terminal(records, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    train, test = tiny_loaders()
    fit(tiny_model(), train, tiny_config(epochs=1, checkpoint_every=None), eval_loader=test,
        progress=True, stage="base")
    messages = [r.getMessage() for r in records]
    assert messages and messages[-1].startswith("base: 100% (step 6/6, epoch 1.00/1.00), loss ")
    records.clear()
    fit(tiny_model(), train, tiny_config(epochs=1, checkpoint_every=None), progress=False)
    assert records == []
