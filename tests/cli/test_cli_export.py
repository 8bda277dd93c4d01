"""`sparsewino export` and the engine artifact in `bench` and `eval`."""
import json

import pytest
import torch

from sparsewino import engine
from sparsewino.cli import main
from sparsewino.engine import kernels
from sparsewino.recipes import load_model

DATA = ["--dataset", "fake", "--eval-batch-size", "64", "--test-limit", "100"]

pytestmark = pytest.mark.skipif(kernels.backend() == "torch",
                                reason=f"kernel not built: {kernels.load_error()}")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    assert main(["--quiet", "train", "--model", "small_vgg", "--model-arg", "widths=[4, M, 8]",
                 "--dataset", "fake", "--batch-size", "32", "--epochs", "0.1",
                 "--output", str(folder / "base.pt")]) == 0
    assert main(["convert", str(folder / "base.pt"), "--output", str(folder / "wino.pt")]) == 0
    return folder / "wino.pt"


def test_export_then_bench_and_eval_the_artifact(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPARSEWINO_CACHE_DIR", str(tmp_path / "cache"))
    output = tmp_path / "model.swe"
    assert main(["export", str(checkpoint), "-o", str(output), "--tune-shape", "1x1x28x28",
                 "--tune-shape", "4x1x28x28", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert f"saved {output}" in text and "input shapes 1x1x28x28, 4x1x28x28" in text
    assert "tuned" in text                                            # the first shape was tuned
    loaded = engine.load(output)
    assert loaded.input_shapes == [(1, 1, 28, 28), (4, 1, 28, 28)] and loaded.header["threads"] == 1
    model, _ = load_model(checkpoint)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=1e-4, atol=1e-4)

    assert main(["bench", str(output), "--batch-size", "6", "--warmup", "0", "--repeats", "2",
                 "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["artifact_ms"] > 0 and bench["input_shape"] == [6, 1, 28, 28]
    assert main(["eval", str(output), *DATA, "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == 100 and result["artifact"] is True
    assert main(["eval", str(checkpoint), *DATA, "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(result["accuracy"])


@pytest.mark.parametrize("argv,message,status", [
    (["--tune-shape", "1x3x28x28"], "--tune-shape 1x3x28x28: the model takes N x 1 x H x W", 2),
    (["--tune-shape", "axb"], "'axb' is not a shape like 1x3x32x32", 2),
    (["--precision", "int4"], "--precision: invalid choice: 'int4'", 2),
    (["--precision", "bf16", "--weights", "fp16"], "--precision bf16 --weights fp16: precision='bf16'", 2),
])
def test_export_refuses_bad_flags(checkpoint, tmp_path, capsys, argv, message, status):
    try:
        code = main(["export", str(checkpoint), "-o", str(tmp_path / "m.swe"), "--no-tune", *argv])
    except SystemExit as exc:                         # argparse's own errors
        code = exc.code
    assert code == status and message in capsys.readouterr().err


def test_bench_names_the_shapes_an_artifact_has(checkpoint, tmp_path, capsys):
    output = tmp_path / "model.swe"
    assert main(["export", str(checkpoint), "-o", str(output), "--no-tune", "--tune-shape",
                 "2x1x28x28"]) == 0
    capsys.readouterr()
    assert main(["bench", str(output), "--batch-size", "3", "--repeats", "1", "--warmup", "0"]) == 1
    err = capsys.readouterr().err
    assert "programs for input shapes [(2, 1, 28, 28)], none for (3, 1, 28, 28)" in err
    assert "--tune-shape 3x1x28x28" in err


def test_export_and_bench_in_bf16(checkpoint, tmp_path, capsys):
    from sparsewino import engine
    output = tmp_path / "bf16.swe"
    assert main(["export", str(checkpoint), "-o", str(output), "--no-tune",
                 "--precision", "bf16"]) == 0
    assert "bf16" in capsys.readouterr().out
    assert engine.load(output).header["precision"] == "bf16"
    assert main(["bench", str(checkpoint), "--batch-size", "2", "--warmup", "0", "--repeats", "1",
                 "--precision", "bf16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["compiled_ms"] > 0


def test_commands_that_need_a_checkpoint_say_an_artifact_is_not_one(checkpoint, tmp_path, capsys):
    from sparsewino.engine.artifact import MAGIC
    from sparsewino.train.checkpoint import _SIGNATURES
    assert (MAGIC, ) == tuple(sig for sig, _ in _SIGNATURES if sig.startswith(b"SWENG"))
    output = tmp_path / "model.swe"
    assert main(["export", str(checkpoint), "-o", str(output), "--no-tune"]) == 0
    capsys.readouterr()
    assert main(["count", str(output)]) != 0
    err = capsys.readouterr().err
    assert "sparsewino engine artifact (.swe)" in err and "exported from" in err
