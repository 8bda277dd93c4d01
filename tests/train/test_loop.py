"""fit()/evaluate(): learning, masks respected, callbacks, schedules, exact resume after a crash."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from sparsewino.train import (
    CheckpointError,
    MetricsLog,
    OptimizerConfig,
    ScheduleConfig,
    evaluate,
    fit,
    lr_factor,
    read_metrics,
)

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import tiny_config, tiny_loaders, tiny_model  # noqa: E402


class Recorder:
    """A callback using every hook of the protocol, with state that must survive a resume."""

    def __init__(self, crash_at=None):
        self.crash_at, self.calls, self.count = crash_at, [], 0

    def on_train_begin(self, model):
        self.calls.append("begin")
        self.count_at_begin = self.count          # restored before on_train_begin on a resume

    def regularization(self, model):
        return 1e-3 * model.classifier[-1].weight.abs().sum()

    def after_step(self, model, step):
        self.count += 1
        self.calls.append(step)
        if step == self.crash_at:
            raise KeyboardInterrupt("simulated kill")

    def on_epoch_end(self, model, epoch):
        self.calls.append(f"epoch{epoch}")

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_fit_learns_and_respects_masks():
    model = tiny_model()
    train, test = tiny_loaders(samples=128)
    before = evaluate(model, test)["accuracy"]
    result = fit(model, train, tiny_config(epochs=6, checkpoint_every=None), eval_loader=test)
    conv = model.features[0]
    assert result.evaluation["accuracy"] >= 0.8 > before + 0.3
    assert torch.all(conv.weight[conv.weight_mask == 0] == 0)
    assert result.steps == 48 and len(result.history) == 6
    assert "test_accuracy" in result.history[0]


def test_callback_protocol_order():
    model = tiny_model()
    train, _ = tiny_loaders()
    recorder = Recorder()
    fit(model, train, tiny_config(epochs=1.5, checkpoint_every=None), callbacks=[recorder])
    assert recorder.calls == ["begin", 0, 1, 2, 3, 4, 5, "epoch0", 6, 7, 8, "epoch1"]


def test_resume_after_crash_is_exact(tmp_path):
    train, test = tiny_loaders()
    reference_model = tiny_model()
    reference = fit(reference_model, train, tiny_config(), eval_loader=test, callbacks=[Recorder()],
                    checkpoint=tmp_path / "ref.pt")
    model = tiny_model()
    log = MetricsLog(tmp_path / "metrics.jsonl")
    with pytest.raises(KeyboardInterrupt):
        fit(model, train, tiny_config(), eval_loader=test, callbacks=[Recorder(crash_at=10)],
            checkpoint=tmp_path / "run.pt", metrics=log)
    resumed_model = tiny_model()                      # a fresh process would rebuild the model
    recorder = Recorder()
    resumed = fit(resumed_model, train, tiny_config(), eval_loader=test, callbacks=[recorder],
                  checkpoint=tmp_path / "run.pt", metrics=log)
    assert resumed.resumed_at_step == 8 and recorder.calls[:2] == ["begin", 8]
    assert recorder.count == 18 and recorder.count_at_begin == 8
    for key, value in reference_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    assert resumed.evaluation == reference.evaluation
    assert resumed.train_loss == reference.train_loss and resumed.history == reference.history
    events = [r["event"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert "resume" in events and events[-1] == "eval"
    again = fit(tiny_model(), train, tiny_config(), eval_loader=test, checkpoint=tmp_path / "run.pt",
                callbacks=[Recorder()])
    assert again.evaluation == reference.evaluation  # finished checkpoint: loaded, not retrained


def test_resume_with_other_config_or_model_is_refused(tmp_path):
    train, _ = tiny_loaders()
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_model(), train, tiny_config(), callbacks=[Recorder(crash_at=5)], checkpoint=tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"other settings \(epochs 3 -> 2\)"):
        fit(tiny_model(), train, tiny_config(epochs=2), callbacks=[Recorder()], checkpoint=tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"optimizer.lr 0.2 -> 0.1; seed 0 -> 1"):
        fit(tiny_model(), train, tiny_config(optimizer=OptimizerConfig(lr=0.1), seed=1),
            checkpoint=tmp_path / "c.pt")
    fit(tiny_model(), train, tiny_config(checkpoint_every=2, log_every=1), callbacks=[Recorder()],
        checkpoint=tmp_path / "c.pt")                         # frequencies may change: resumes
    with pytest.raises(CheckpointError, match="does not fit this model"):
        fit(tiny_model(masked=False), train, tiny_config(), checkpoint=tmp_path / "c.pt")


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimizers_reduce_loss(name):
    model = tiny_model(masked=False)
    train, test = tiny_loaders()
    lr = 0.1 if name == "sgd" else 0.01
    before = evaluate(model, test)["loss"]
    config = tiny_config(epochs=2, optimizer=OptimizerConfig(name, lr=lr), label_smoothing=0.1,
                         grad_clip=5.0, checkpoint_every=None)
    after = fit(model, train, config, eval_loader=test).evaluation["loss"]
    assert after < before


def test_schedules():
    cosine = ScheduleConfig("cosine", final_fraction=0.1)
    assert lr_factor(cosine, 0, 100, 10) == 1.0
    assert math.isclose(lr_factor(cosine, 50, 100, 10), 0.55)
    assert math.isclose(lr_factor(cosine, 100, 100, 10), 0.1)
    step = ScheduleConfig("step", step_epochs=2, gamma=0.5)
    assert [lr_factor(step, s, 100, 10) for s in (0, 19, 20, 45)] == [1.0, 1.0, 0.5, 0.25]
    multi = ScheduleConfig("multistep", milestones=[1, 3], gamma=0.1)
    assert [round(lr_factor(multi, s, 100, 10), 6) for s in (5, 10, 29, 30)] == [1.0, 0.1, 0.1, 0.01]
    warm = ScheduleConfig("linear", warmup_epochs=1)
    assert lr_factor(warm, 0, 100, 10) == pytest.approx(1 / 11)
    assert lr_factor(warm, 10, 100, 10) == 1.0 and lr_factor(warm, 100, 100, 10) == 0.0
    assert lr_factor(ScheduleConfig(), 7, 10, 3) == 1.0


def test_divergence_is_reported():
    model = tiny_model(masked=False)
    train, _ = tiny_loaders()
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(model, train, tiny_config(optimizer=OptimizerConfig(lr=1e12, weight_decay=0),
                                      schedule=ScheduleConfig(), checkpoint_every=None))


def test_metrics_jsonl(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    fit(tiny_model(), tiny_loaders()[0], tiny_config(epochs=1, checkpoint_every=None), metrics=log, stage="s")
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records if r["event"] == "step"] == [2, 4, 6]
    assert all(r["stage"] == "s" for r in records)
