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


@pytest.mark.parametrize("argv,message", [
    (["train", "--model", "small_vgg", *DATA, "--lr", "nan"], "--lr must be a finite number, got nan"),
    (["train", "--model", "small_vgg", *DATA, "--weight-decay", "nan"], "--weight-decay must be a finite number"),
    (["train", "--model", "small_vgg", *DATA, "--epochs", "inf"], "--epochs must be a finite number"),
    (["prune", "{base}", "--method", "winograd_domain", "--amount", "0.5", "--grad-power", "nan"],
     "grad_power must be a number, got nan"),
    (["prune", "{base}", "--method", "magnitude", "--amount", "0.5", "--override", "features.0=1.0"],
     "override features.0: 1.0 is impossible"),
    (["prune", "{base}", "--method", "magnitude", "--amount", "0.5", "--dataset", "fake",
      "--finetune-epochs", "1", "--finetune-lr", "nan"], "--finetune-lr must be a finite number"),
])
def test_impossible_values_are_refused(base, tmp_path, capsys, argv, message):
    argv = [a.replace("{base}", str(base)) for a in argv] + ["--output", str(tmp_path / "x.pt")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("option", [["--batch-size", "0"], ["--input-size", "0"], ["--repeats", "0"]])
def test_bench_refuses_empty_sizes(base, capsys, option):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", str(base), *option])
    assert exit_.value.code == 2 and "is too small (at least 1)" in capsys.readouterr().err


def test_infinite_epochs_fail_the_recipe_check(capsys):
    assert main(["run", "fashion_mnist_native", "--check", "--set", "stages.baseline.epochs=.inf"]) == 1
    assert "epochs: must be a finite number, got inf" in capsys.readouterr().err


def test_a_mask_that_is_not_zeros_and_ones_is_refused(base, tmp_path, capsys):
    from sparsewino.prune import magnitude
    from sparsewino.recipes import save_model
    model, checkpoint = load_model(base)
    magnitude(model.features[0], 0.5)
    with torch.no_grad():
        model.features[0].weight_mask.view(-1)[0] = 0.5
    save_model(tmp_path / "bad.pt", model, checkpoint["architecture"])
    assert main(["inspect", str(tmp_path / "bad.pt")]) == 1
    assert "mask 'features.0.weight_mask' holds 1 value(s) other than 0 and 1" in capsys.readouterr().err


def test_train_refuses_new_settings_on_an_old_checkpoint(base, capsys):
    """A finished run, then other settings: it used to print the old result and train nothing."""
    args = ["train", "--model", "small_vgg", *SMALL, *DATA, "--output", str(base)]
    before = base.read_bytes()
    assert main([*args, "--epochs", "0.5", "--quiet"]) == 0                   # the same settings
    assert "already trained with these settings" in capsys.readouterr().out
    assert main([*args, "--epochs", "0.25", "--lr", "0.1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "belongs to a training run with other settings" in err and "epochs 0.5 -> 0.25" in err
    assert "optimizer.lr 0.05 -> 0.1" in err and "--fresh" in err
    assert base.read_bytes() == before                                          # nothing overwritten
    assert main([*args, "--model-arg", "widths=[4, M, 8]", "--epochs", "0.5", "--quiet"]) == 1
    assert "architecture.args.widths" in capsys.readouterr().err
    assert main([*args, "--epochs", "0.25", "--lr", "0.1", "--fresh", "--quiet"]) == 0
    assert "after 0.25 epochs" in capsys.readouterr().out


def test_small_things_of_the_command_line(base, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {dataset: mnist\nstages:\n  - stage: train\n")
    assert main(["run", str(bad), "--check"]) == 1
    err = capsys.readouterr().err
    assert "not valid YAML: line 3, column 7 ('stages:'): while parsing a flow mapping; expected ','" in err
    assert main(["run", "fashion_mnist_spatial_winograd", "--check", "--until", "stepp2"]) == 1
    assert "--until 'stepp2': no such stage" in capsys.readouterr().err
    assert main(["run", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed and all(line.rstrip().endswith(".") for line in listed)    # whole descriptions
    assert main(["bench", str(base), "--device", "cuda"]) == 2
    assert "bench times the CPU engine" in capsys.readouterr().err
    from sparsewino.cli import build_parser
    assert "TOP_" not in build_parser().format_help()
