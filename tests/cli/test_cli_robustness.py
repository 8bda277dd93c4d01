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
