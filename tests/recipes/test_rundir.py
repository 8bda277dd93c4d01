"""--fresh deletes only run directories sparsewino created, and only the files a run writes."""
import pytest

from sparsewino.cli import main
from sparsewino.recipes import RunDirectoryError, load_recipe, run_recipe
from sparsewino.recipes.rundir import MARKER, clear_run_dir, create_run_dir

QUIET = dict(progress=False, log=lambda message: None)
TINY = ["model.args={widths: [4, M, 8]}", "stages=[{stage: train, name: b}]"]


def _thesis(tmp_path):
    folder = tmp_path / "thesis"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "thesis.tex").write_text("\\chapter{Results}")
    return folder


def test_fresh_refuses_a_directory_it_did_not_create(tmp_path):
    folder = _thesis(tmp_path)
    recipe = load_recipe("fashion_mnist_native", TINY, smoke=True)
    with pytest.raises(RunDirectoryError, match="sparsewino did not create it"):
        run_recipe(recipe, folder, fresh=True, **QUIET)
    assert (folder / "src" / "thesis.tex").read_text() == "\\chapter{Results}"


def test_cli_fresh_refuses_and_keeps_the_files(tmp_path, capsys):
    folder = _thesis(tmp_path)
    status = main(["run", "fashion_mnist_native", "--smoke", "--quiet", "--fresh", "--run-dir", str(folder),
                   *[a for s in TINY for a in ("--set", s)]])
    assert status != 0 and "refusing to delete" in capsys.readouterr().err
    assert (folder / "src" / "thesis.tex").is_file()


def test_fresh_deletes_a_previous_run_but_keeps_foreign_files(tmp_path):
    run_dir = tmp_path / "run"
    recipe = load_recipe("fashion_mnist_native", TINY, smoke=True)
    run_recipe(recipe, run_dir, **QUIET)
    assert (run_dir / MARKER).is_file() and (run_dir / "model.pt").is_file()
    (run_dir / "notes.txt").write_text("mine")
    again = run_recipe(recipe, run_dir, fresh=True, **QUIET)
    assert again.stages_run == ["b"]                         # started over ...
    assert (run_dir / "notes.txt").read_text() == "mine"     # ... without touching notes.txt


def test_clear_run_dir_removes_links_without_following_them(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    run_dir = create_run_dir(tmp_path / "run")
    (run_dir / "stages").symlink_to(outside, target_is_directory=True)
    (run_dir / "results.json").symlink_to(outside / "keep.txt")
    (run_dir / ".model.pt.abc.tmp").write_bytes(b"half")
    assert clear_run_dir(run_dir) == []
    assert (outside / "keep.txt").read_text() == "x" and not any(run_dir.iterdir())
    assert clear_run_dir(tmp_path / "missing") == []
    with pytest.raises(RunDirectoryError):                   # the marker went with the run
        clear_run_dir(run_dir)
    (tmp_path / "planted").write_text("")
    (run_dir / MARKER).symlink_to(tmp_path / "planted")        # a linked marker does not count
    with pytest.raises(RunDirectoryError):
        clear_run_dir(run_dir)


def test_a_plain_run_does_not_take_over_a_folder_it_did_not_create(tmp_path):
    folder = tmp_path / "myexp"
    folder.mkdir()
    recipe_text = "# my notes\nname: mine\n"
    (folder / "recipe.yaml").write_text(recipe_text)
    (folder / "model.pt").write_bytes(b"my model")
    recipe = load_recipe("fashion_mnist_native", TINY, smoke=True)
    with pytest.raises(RunDirectoryError, match="not a sparsewino run directory"):
        run_recipe(recipe, folder, until=0, **QUIET)
    assert (folder / "recipe.yaml").read_text() == recipe_text
    assert (folder / "model.pt").read_bytes() == b"my model" and not (folder / MARKER).exists()


def test_report_refuses_a_folder_it_did_not_create(tmp_path, capsys):
    folder = tmp_path / "userdir"
    (folder / "report").mkdir(parents=True)
    (folder / "results.json").write_text("[]")
    (folder / "report" / "summary.md").write_text("mine")
    assert main(["report", str(folder)]) == 1
    assert "sparsewino did not create it" in capsys.readouterr().err
    assert (folder / "report" / "summary.md").read_text() == "mine"


def test_one_process_at_a_time_in_a_run_directory(tmp_path):
    import os

    from sparsewino.recipes.rundir import LOCK, locked_run_dir
    run_dir = tmp_path / "run"
    recipe = load_recipe("fashion_mnist_native", TINY, smoke=True)
    with locked_run_dir(run_dir):                      # another run holds it
        with pytest.raises(RunDirectoryError, match=f"in use by another sparsewino process "
                                                    f"\\(pid {os.getpid()}\\)"):
            run_recipe(recipe, run_dir, until=0, **QUIET)
    result = run_recipe(recipe, run_dir, until=0, **QUIET)   # released: runs
    assert result.stages_run and (run_dir / LOCK).is_file()
    kept = clear_run_dir(run_dir)
    assert kept == []                                   # the lock file is not "someone's file"


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="prctl is Linux")
def test_a_study_run_ends_when_its_study_is_killed(tmp_path):
    """kill -9 of the study process: the run it started gets SIGTERM (PR_SET_PDEATHSIG)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    parent = (
        "import os, subprocess, sys\n"
        "from sparsewino.recipes.study import PARENT_ENV\n"
        "child = subprocess.Popen([sys.executable, '-c', 'from sparsewino.recipes.study import "
        "follow_parent; follow_parent(); import time; time.sleep(60)'],\n"
        "                         env={**os.environ, PARENT_ENV: str(os.getpid())})\n"
        "print(child.pid, flush=True)\n"
        "import time; time.sleep(60)\n")
    study = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    child = int(study.stdout.readline())
    time.sleep(1.5)                                    # the child has set its death signal
    os.kill(study.pid, signal.SIGKILL)
    study.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        try:
            if open(f"/proc/{child}/stat").read().split()[2] == "Z":
                break                                  # ended, not reaped yet
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the run outlived its study")
