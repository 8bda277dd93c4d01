"""The sparsewino command on a 3-D model: convert --low-rank, column pruning, count, bench, errors."""
import json

import torch

from sparsewino.cli import main
from sparsewino.nn import LowRankWinogradConv3d
from sparsewino.recipes import build_model, load_model, save_model
from sparsewino.recipes.architecture import new_architecture


def test_low_rank_column_pipeline_from_the_command_line(tmp_path, capsys):
    torch.manual_seed(0)
    architecture = new_architecture("c3d_small", {"widths": [4, "P", 6, "M", 8]}, 1, 5)
    base = tmp_path / "base.pt"
    save_model(base, build_model(architecture), architecture, input_shape=[1, 1, 4, 8, 8])
    low, pruned = str(tmp_path / "low.pt"), str(tmp_path / "pruned.pt")
    assert main(["convert", str(base), "--low-rank", "0.1", "--exclude", "features.0",
                 "--output", low]) == 0
    out = capsys.readouterr().out
    assert "low-rank Winograd, F(4x4x4,3x3x3); rank 22 of 216 positions" in out
    model, _ = load_model(low)
    assert isinstance(model.features[4], LowRankWinogradConv3d)
    assert main(["prune", low, "--method", "column", "--amount", "0.5", "--importance", "l1",
                 "--output", pruned]) == 0
    capsys.readouterr()
    assert main(["count", pruned, "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    layer = next(row for row in counts["layers"] if row["name"] == "features.4")
    assert layer["weight_density"] == 0.5 and layer["input_shape"] == [1, 4, 4, 4, 4]
    assert main(["bench", pruned, "--batch-size", "2", "--warmup", "0", "--repeats", "1",
                 "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["input_shape"] == [2, 1, 4, 8, 8] and bench["compiled_ms"] > 0


def test_bad_ranks_are_one_line_errors(tmp_path, capsys):
    architecture = new_architecture("c3d_small", {"widths": [4]}, 1, 2)
    base = tmp_path / "base.pt"
    save_model(base, build_model(architecture), architecture, input_shape=[1, 1, 4, 8, 8])
    out = str(tmp_path / "x.pt")
    assert main(["convert", str(base), "--low-rank", "0", "--output", out]) != 0
    assert "rank must be >= 1" in capsys.readouterr().err
    assert main(["convert", str(base), "--low-rank", "0.5", "--domain", "spatial",
                 "--output", out]) != 0
    assert "--low-rank makes Winograd-domain layers" in capsys.readouterr().err
