"""What the command prints: progress lines without a terminal (none with --quiet), where it lives."""
from sparsewino.cli import main

TRAIN = ["train", "--model", "small_vgg", "--model-arg", "widths=[4, M, 8]", "--dataset", "fake",
         "--batch-size", "32", "--eval-batch-size", "64", "--epochs", "1"]


def test_train_prints_progress_lines_to_a_log(tmp_path, capsys):
    assert main([*TRAIN, "--output", str(tmp_path / "a.pt")]) == 0
    out = capsys.readouterr().out                          # captured: not a terminal
    assert "  train: 100% (step " in out and ", loss " in out
    assert main([*TRAIN, "--quiet", "--output", str(tmp_path / "b.pt")]) == 0
    assert "train: 100%" not in capsys.readouterr().out


def test_demo_says_where_the_command_is_when_it_is_not_on_path(tmp_path, capsys, monkeypatch):
    import shutil

    from sparsewino import demo
    monkeypatch.setattr(shutil, "which", lambda name: None)
    hint = demo.command_hint()
    assert hint.startswith("the sparsewino command is ") and "/sparsewino" in hint
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/sparsewino")
    assert demo.command_hint() is None


def test_a_reused_run_says_its_wall_time_is_not_the_runs(tmp_path, capsys):
    argv = ["run", "fashion_mnist_native", "--smoke", "--quiet", "--run-dir", str(tmp_path / "run"),
            "--set", "model.args={widths: [4, M, 8]}", "--set", "stages=[{stage: train, name: b}]"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "reused from" not in first
    assert main(argv) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("wall time"))
    assert "now: every step was reused from the run directory (they took " in line


def test_a_run_without_a_report_stage_does_not_claim_a_report(tmp_path, capsys):
    argv = ["run", "fashion_mnist_native", "--smoke", "--quiet", "--run-dir", str(tmp_path / "K1"),
            "--set", "model.args={widths: [4, M, 8]}", "--set", "stages=[{stage: train, name: b}]"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "report:" not in out and "(no report stage ran)" in out


def test_eval_help_lists_no_training_flags(capsys):
    import pytest
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    assert "--test-limit" in text and "--eval-batch-size" in text
    assert "--train-limit" not in text and "--no-augment" not in text and "--batch-size " not in text


def test_pruning_a_spatial_model_with_a_winograd_method_says_to_convert_first():
    import pytest
    from torch import nn

    from sparsewino.prune import SelectionError, prune_model
    with pytest.raises(SelectionError, match="convert the model to the Winograd domain first"):
        prune_model(nn.Sequential(nn.Conv2d(3, 4, 3)), "winograd_domain", 0.5)
