"""The sparsewino command: every subcommand on tiny fake data, one-line errors, --debug, --help."""
import json
import subprocess
import sys

import pytest
import torch

from sparsewino.cli import main
from sparsewino.recipes import load_model
from sparsewino.train.checkpoint import CheckpointError

DATA = ["--dataset", "fake", "--batch-size", "32", "--eval-batch-size", "64"]
SMALL = ["--model-arg", "widths=[4, 4, M, 8]"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    status = main(["--quiet", "train", "--model", "small_vgg", *SMALL, *DATA, "--epochs", "1",
                   "--output", str(folder / "base.pt")])
    assert status == 0
    return folder


def test_train_writes_a_rebuildable_checkpoint(trained, capsys):
    model, checkpoint = load_model(trained / "base.pt")
    assert checkpoint["input_shape"] == [1, 1, 28, 28] and 0 <= checkpoint["evaluation"]["accuracy"] <= 1
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert (trained / "base.pt.train.pt").is_file() and (trained / "base.pt.metrics.jsonl").is_file()


def test_prune_convert_eval_count_inspect_bench(trained, capsys):
    base, step1, wino, step2 = (str(trained / n) for n in ("base.pt", "s1.pt", "w.pt", "s2.pt"))
    assert main(["prune", base, "--method", "spatial_winograd", "--amount", "0.5", "--override",
                 "features.0=0.2", *DATA, "--finetune-epochs", "0.5", "--output", step1, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "spatial_winograd 0.5: Winograd-domain sparsity" in out and "test accuracy" in out
    assert main(["convert", step1, "--domain", "winograd", "--output", wino]) == 0
    assert "3 of 3 convolutions converted" in capsys.readouterr().out
    assert main(["prune", wino, "--method", "winograd_domain", "--amount", "0.7", "--output", step2]) == 0
    capsys.readouterr()
    assert main(["eval", step2, *DATA, "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == 256 and 0.6 < result["winograd_sparsity"] <= 0.7
    assert main(["count", step2, "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in counts["layers"]] == ["features.0", "features.3", "features.7"]
    assert counts["total"]["sparse"] < counts["total"]["winograd"] < counts["total"]["direct"]
    assert main(["count", step2, "--dataset", "fake", "--images", "8"]) == 0
    text = capsys.readouterr().out
    assert "dynamic" in text and "(input (8, 1, 28, 28)" in text
    assert main(["inspect", step2, "--positions"]) == 0
    text = capsys.readouterr().out
    assert "transforms: convert(tile=4, domain=winograd, decompose=auto)" in text
    assert "zeros per Winograd position" in text
    assert main(["bench", step2, "--batch-size", "4", "--warmup", "0", "--repeats", "1", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["compiled_ms"] > 0 and bench["input_shape"] == [4, 1, 28, 28]


def test_run_check_list_and_smoke(tmp_path, capsys):
    assert main(["run", "--list"]) == 0
    assert "fashion_mnist_spatial_winograd" in capsys.readouterr().out
    assert main(["run", "fashion_mnist_spatial_winograd", "--check", "--set", "stages.step1.targets=[0.4]"]) == 0
    assert "3: prune step2" in capsys.readouterr().out
    run_dir = tmp_path / "run"
    assert main(["run", "fashion_mnist_native", "--smoke", "--quiet", "--run-dir", str(run_dir), "--set",
                 "model.args={widths: [4, M, 8]}", "--set", "stages=[{stage: train, name: b}, {stage: report}]"]) == 0
    assert f"report: {run_dir / 'report' / 'summary.md'}" in capsys.readouterr().out
    assert main(["report", str(run_dir), "--no-plots"]) == 0
    assert (run_dir / "report" / "summary.md").is_file()


@pytest.mark.parametrize("argv,message,status", [
    (["inspect", "missing.pt"], "sparsewino: error: checkpoint missing.pt does not exist", 1),
    (["run", "nope"], "sparsewino: error: recipe 'nope' is neither a file nor a bundled recipe", 1),
    (["run", "fashion_mnist_native", "--set", "stages.native.sparsity=2", "--check"],
     "sparsity must be < 1", 1),
    (["eval", "x.pt", "--dataset", "mnist", "--data-dir", "/nonexistent"], "does not exist", 1),
    (["report", "/nonexistent"], "is not a run directory", 1),       # a missing path: 1, like inspect
    (["run"], "run needs a RECIPE", 2),
])
def test_errors_are_one_line(argv, message, status, capsys):
    assert main(argv) == status
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_corrupt_checkpoint_and_debug(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    assert main(["inspect", str(bad)]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err
    with pytest.raises(Exception, match="truncated or corrupt"):
        main(["inspect", str(bad), "--debug"])


def test_prune_linear_layers_and_method_flags(trained, capsys):
    fc = str(trained / "fc.pt")
    assert main(["prune", str(trained / "base.pt"), "--method", "magnitude", "--layers", "linear",
                 "--amount", "0.5", "--output", fc]) == 0
    out = capsys.readouterr().out
    assert "spatial 0.00%" in out and "linear layers 50.00%" in out
    model, _ = load_model(fc)
    assert float((model.classifier[1].weight == 0).float().mean()) == 0.5
    assert main(["prune", str(trained / "base.pt"), "--method", "magnitude", "--no-ifm", "--amount", "0.5",
                 "--output", fc]) == 2
    assert "--ifm do(es) not apply to method magnitude (its options: --layers, --block)" in capsys.readouterr().err
    assert main(["prune", str(trained / "base.pt"), "--method", "winograd_domain", "--grad-power", "-1",
                 "--amount", "0.5", "--output", fc]) == 2
    assert "grad_power must be >= 0" in capsys.readouterr().err


def test_prune_rejects_impossible_amount(trained, capsys):
    assert main(["prune", str(trained / "base.pt"), "--method", "magnitude", "--amount", "1.5",
                 "--output", str(trained / "x.pt")]) == 2
    assert "--amount 1.5 is impossible" in capsys.readouterr().err


TINY_RECIPE = """name: tiny
description: a tiny recipe of the CLI tests
data: {dataset: fake, options: {num_samples: 32}, eval_batch_size: 32}
model: {name: small_vgg, args: {widths: [4, M, 8]}}
stages: [{stage: evaluate, name: final}]
"""


@pytest.mark.parametrize("before", [True, False])
def test_global_flags_before_or_after_the_command(tmp_path, capsys, before):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    flags = ["--quiet", "--threads", "2", "--device", "cpu"]
    command = ["run", str(recipe), "--run-dir", str(tmp_path / "run")]
    threads = torch.get_num_threads()
    try:
        assert main(flags + command if before else command + flags) == 0
        assert torch.get_num_threads() == 2                               # --threads took effect
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "a tiny recipe of the CLI tests" not in out and "baseline accuracy" in out   # --quiet
    assert "device: cpu" in (tmp_path / "run" / "recipe.yaml").read_text()          # --device
    assert main(command) == 0 and "tiny: a tiny recipe of the CLI tests" in capsys.readouterr().out
    debug = ["--debug", "inspect", str(tmp_path / "missing.pt")]
    with pytest.raises(CheckpointError, match="does not exist"):        # --debug re-raises
        main(debug if before else debug[1:] + debug[:1])


def test_help_and_console_entry_point(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    for command in ("run", "train", "prune", "convert", "eval", "bench", "count", "report", "inspect"):
        assert f"    {command} " in help_text
    assert "--set stages.baseline.epochs=1" in help_text
    assert main([]) == 2 and "usage: sparsewino" in capsys.readouterr().out
    done = subprocess.run([sys.executable, "-m", "sparsewino.cli", "inspect", "nothing.pt"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.strip() == "sparsewino: error: checkpoint nothing.pt does not exist"
    assert "--run-dir" in subprocess.run([sys.executable, "-m", "sparsewino.cli", "run", "--help"],
                                         capture_output=True, text=True, timeout=60).stdout


def test_demo_entry_point(tmp_path, capsys):
    from sparsewino.demo import RECIPE
    from sparsewino.demo import main as demo_main
    assert RECIPE == "fashion_mnist_gradual_step2_distill_short"
    run_dir = tmp_path / "demo"
    args = ["--smoke", "--quiet", "--run-dir", str(run_dir), "--until", "baseline", "--set",
            "model.args={widths: [4, M, 8]}"]
    assert demo_main(args) == 0
    out = capsys.readouterr().out
    assert "baseline accuracy" in out and f"results: {run_dir} (no report stage ran)" in out
    assert demo_main(args) == 0                                     # second run reuses the directory
    assert demo_main(["--help"]) == 0 and "make demo" in capsys.readouterr().out
