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
