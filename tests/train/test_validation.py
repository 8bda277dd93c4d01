"""Values that compare false with every bound (NaN), infinities, damaged masks, full disks, planted links."""
import json
import math

import pytest
import torch

from sparsewino.files import write_text_atomic
from sparsewino.prune.serialization import check_mask_values
from sparsewino.schema import check_range
from sparsewino.train import (
    CheckpointError,
    ConfigError,
    MetricsLog,
    OptimizerConfig,
    TrainConfig,
    from_dict,
    load_checkpoint,
    save_checkpoint,
)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_check_range_refuses_non_finite_values(value):
    with pytest.raises(ValueError, match="lr must be a finite number"):
        check_range("lr", value, 0, low_open=True)
    check_range("lr", None, 0)                                   # absent stays allowed


@pytest.mark.parametrize("build,message", [
    (lambda: OptimizerConfig(lr=math.nan), "lr must be a finite number"),
    (lambda: OptimizerConfig(weight_decay=math.nan), "weight_decay must be a finite number"),
    (lambda: OptimizerConfig(name="adam", betas=(math.nan, 0.9)), "betas must be a finite number"),
    (lambda: TrainConfig(epochs=math.inf), "epochs must be a finite number"),
    (lambda: from_dict(TrainConfig, {"epochs": math.inf}), "config.epochs: must be a finite number"),
    (lambda: from_dict(TrainConfig, {"schedule": {"milestones": [1.0, math.nan]}}), "finite"),
])
def test_configs_refuse_nan_and_infinity(build, message):
    with pytest.raises((ValueError, ConfigError), match=message):
        build()


@pytest.mark.parametrize("bad", [0.5, 7.0, -1.0, math.nan])
def test_masks_must_hold_zeros_and_ones(bad, tmp_path):
    mask = torch.ones(2, 3)
    mask[0, 1] = bad
    state = {"conv.weight_orig": torch.randn(2, 3), "conv.weight_mask": mask}
    with pytest.raises(ValueError, match="'conv.weight_mask' holds 1 value"):
        check_mask_values(state)
    check_mask_values({"conv.weight_mask": torch.tensor([0.0, 1.0]), "b_mask": torch.tensor([True])})


def test_a_full_disk_is_reported_and_the_previous_checkpoint_kept(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    path = save_checkpoint(tmp_path / "model.pt", {"v": torch.ones(3)})
    real_save = torch.save

    def full_disk(obj, handle, *args, **kwargs):             # the real torch error on ENOSPC
        with open("/dev/full", "wb") as full:
            real_save(obj, full, *args, **kwargs)
    monkeypatch.setattr(torch, "save", full_disk)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10 ** 9, 10 ** 9, 4096))
    with pytest.raises(CheckpointError) as error:
        save_checkpoint(path, {"v": torch.zeros(10 ** 5)})
    message = str(error.value)
    assert "could not write checkpoint" in message and "the disk is full (0 MB free)" in message
    assert f"the previous checkpoint {path} is unchanged" in message
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["v"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_writes_do_not_follow_planted_links(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").symlink_to(outside)
    write_text_atomic(run_dir / "results.json", json.dumps([1]))
    assert outside.read_text() == "precious" and not (run_dir / "results.json").is_symlink()
    (run_dir / "metrics.jsonl").symlink_to(outside)
    with pytest.raises(OSError, match="symbolic link; refusing"):
        MetricsLog(run_dir / "metrics.jsonl").write(event="x")
    assert outside.read_text() == "precious"
