"""Atomic checkpoint writing and safe loading (never executing code), clear errors."""
import os
from pathlib import Path

import pytest
import torch

from sparsewino.train import CheckpointError, load_checkpoint, save_checkpoint


class NotData:
    def __init__(self):
        self.value = 1


def test_roundtrip(tmp_path):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "progress": {"step": 3}, "names": ["a"],
             "opt": None, "lr": 0.1}
    path = save_checkpoint(tmp_path / "sub" / "c.pt", state)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert loaded["progress"] == {"step": 3} and loaded["format"] == "sparsewino-checkpoint"


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", {"v": torch.ones(3)})
    real_save = torch.save

    def broken(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(CheckpointError, match="disk full.*previous checkpoint .* is unchanged"):
        save_checkpoint(path, {"v": torch.zeros(3)})
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(load_checkpoint(path)["v"], torch.ones(3))
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]            # no temporary file left behind


def test_truncated_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"v": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


def test_code_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "sparsewino-checkpoint", "payload": NotData()}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path)


def test_foreign_files(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weight": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="not a sparsewino checkpoint"):
        load_checkpoint(path)
    Path(tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"format": "sparsewino-checkpoint", "version": 99}, path)
    with pytest.raises(CheckpointError, match="newer sparsewino"):
        load_checkpoint(path)


@pytest.mark.parametrize("content,what", [
    (b"hello\nworld\n", "a text file (starting 'hello')"),
    (b"name: demo\ndata: {dataset: mnist}\nstages:\n- stage: train\n", "a YAML recipe"),
    (b"{\"rows\": []}", "a YAML/JSON file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
    (b"\x1f\x8b\x08\x00" + bytes(16), "a gzip archive"),
    (b"", "an empty file"),
])
def test_other_kinds_of_file_are_named(tmp_path, content, what):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert f"is not a checkpoint: it is {what}" in message and "expected a sparsewino checkpoint" in message


def test_a_directory_is_named_and_its_model_pointed_to(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory, not a checkpoint file; expected"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "model.pt", {"v": torch.ones(1)})
    with pytest.raises(CheckpointError, match=f"its model is {tmp_path / 'model.pt'}"):
        load_checkpoint(tmp_path)
