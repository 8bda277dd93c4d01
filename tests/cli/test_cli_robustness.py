"""The sparsewino command on unsafe requests and wrong input: refuse or fix, and say so clearly."""
import warnings

import pytest
import torch

from sparsewino.cli import main
from sparsewino.recipes import load_model
from sparsewino.winograd import WinogradAccuracyWarning

DATA = ["--dataset", "fake", "--batch-size", "32", "--eval-batch-size", "64"]
SMALL = ["--model-arg", "widths=[4, 4, M, 8]"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("robust") / "base.pt"
    torch.manual_seed(0)
    assert main(["--quiet", "train", "--model", "small_vgg", *SMALL, *DATA, "--epochs", "0.5",
                 "--output", str(path)]) == 0
    return path


def test_convert_with_an_inaccurate_tile_uses_an_accurate_one(base, tmp_path, capsys):
    """`convert --tile 10` used F(10x10, 3x3), off by ~7 per output: the model was garbage."""
    out = tmp_path / "wino.pt"
    with pytest.warns(WinogradAccuracyWarning, match="tile 10 is not accurate"):
        assert main(["convert", str(base), "--tile", "10", "--output", str(out)]) == 0
    assert "(10, 10) -> (8, 8)" in capsys.readouterr().out
    original, _ = load_model(base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WinogradAccuracyWarning)    # the replay warns again
        converted, _ = load_model(out)
    images = torch.rand(16, 1, 28, 28)
    torch.testing.assert_close(converted(images), original(images), rtol=1e-4, atol=1e-4)


def test_wrong_files_say_what_they_are(base, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: x\nstages:\n- stage: train\n")
    assert main(["inspect", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert "is not a checkpoint: it is a YAML recipe (run it with `sparsewino run FILE`)" in err
    assert len(err.strip().splitlines()) == 1


def test_a_run_directory_stands_for_its_model(base, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.pt").write_bytes(base.read_bytes())
    assert main(["inspect", str(run_dir)]) == 0
    assert "model small_vgg" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path)]) == 1
    assert "is a directory, not a checkpoint file" in capsys.readouterr().err
