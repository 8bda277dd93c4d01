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
