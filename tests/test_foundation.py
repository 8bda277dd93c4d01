"""The foundation modules files.py and schema.py: behaviour, and the old train/ import paths still work."""
from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from sparsewino import files, schema
from sparsewino.train import checkpoint as old_checkpoint
from sparsewino.train import schema as old_schema


def test_old_import_paths_are_the_same_objects():
    assert old_checkpoint.write_text_atomic is files.write_text_atomic
    for name in old_schema.__all__:
        assert getattr(old_schema, name) is getattr(schema, name)


def test_write_text_atomic_replaces_and_never_follows_a_link(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep")
    path = tmp_path / "out.txt"
    os.symlink(target, path)
    assert files.write_text_atomic(path, "new") == path
    assert path.read_text() == "new" and not path.is_symlink() and target.read_text() == "keep"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_schema_builds_dataclasses_and_names_the_bad_key():
    @dataclass
    class Point:
        x: int
        y: float = 0.0

    assert schema.from_dict(Point, {"x": 1}, "point") == Point(1, 0.0)
    with pytest.raises(schema.ConfigError, match="z"):
        schema.from_dict(Point, {"x": 1, "z": 2}, "point")
