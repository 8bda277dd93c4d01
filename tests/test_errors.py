"""Narrow error handling: user errors are one plain line; defects show their type and the --debug hint."""
import pytest
import torch

from sparsewino import errors
from sparsewino.cli import CliError, main
from sparsewino.data import DatasetError, DatasetNotFoundError
from sparsewino.models import create_model
from sparsewino.prune import SelectionError, prune_model
from sparsewino.recipes import RunDirectoryError, load_model, new_architecture, parse_recipe, run_recipe, save_model
from sparsewino.recipes import architecture as architecture_module
from sparsewino.train import ConfigError
from sparsewino.train.checkpoint import CheckpointError, NotACheckpointError, save_checkpoint

QUIET = dict(progress=False, log=lambda message: None)


@pytest.mark.parametrize("cls", [ConfigError, CheckpointError, NotACheckpointError, DatasetError,
                                 DatasetNotFoundError, RunDirectoryError, CliError, SelectionError,
                                 errors.UnknownNameError, errors.PrecisionRangeError])
def test_user_facing_errors_are_user_errors(cls):
    assert issubclass(cls, errors.UserError)


def test_precision_range_error_is_still_a_value_error():
    # engine.compile's fp16 fallback catches this class; code catching ValueError keeps working
    assert issubclass(errors.PrecisionRangeError, ValueError)


@pytest.fixture
def checkpoint(tmp_path):
    architecture = new_architecture("small_vgg", {"widths": [4, "M", 8]}, 1, 10)
    model = architecture_module.build_model(architecture)
    return save_model(tmp_path / "model.pt", model, architecture, input_shape=[1, 1, 28, 28])


def test_a_defect_shows_its_type_and_the_debug_hint(checkpoint, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise KeyError("layer_table")
    monkeypatch.setattr(architecture_module, "load_model", broken)
    assert main(["inspect", str(checkpoint)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sparsewino: error: KeyError: 'layer_table' (an unexpected error")
    assert "re-run with --debug" in err and len(err.splitlines()) == 1
    with pytest.raises(KeyError, match="layer_table"):
        main(["inspect", str(checkpoint), "--debug"])


def test_user_and_environment_errors_are_plain_lines(checkpoint, monkeypatch, capsys):
    assert main(["prune", str(checkpoint), "--method", "magnitude", "--amount", "0.5",
                 "--override", "nope=0.1", "--output", str(checkpoint)]) == 1
    assert capsys.readouterr().err.strip().startswith("sparsewino: error: overrides ['nope'] match no "
                                                      "prunable layer")

    def no_permission(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/root/x.pt")
    monkeypatch.setattr(architecture_module, "load_model", no_permission)
    assert main(["inspect", str(checkpoint)]) == 1
    assert capsys.readouterr().err.strip() == "sparsewino: error: [Errno 13] Permission denied: '/root/x.pt'"


def test_until_and_selection_errors_are_user_errors(tmp_path):
    recipe = parse_recipe({"name": "t", "data": {"dataset": "fake"}, "model": {"name": "small_vgg"},
                           "stages": [{"stage": "evaluate"}]})
    with pytest.raises(ConfigError, match="no such stage"):
        run_recipe(recipe, tmp_path / "run", until="nope", **QUIET)
    with pytest.raises(SelectionError, match="no layer of the model can be pruned by 'winograd_domain'"):
        prune_model(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3)), "winograd_domain", 0.5)


def test_rebuilding_errors_are_not_hidden_as_foreign_checkpoints(checkpoint, monkeypatch):
    content = torch.load(checkpoint, weights_only=True)
    del content["architecture"]["in_channels"]
    save_checkpoint(checkpoint, {k: v for k, v in content.items() if k not in ("format", "version")})
    with pytest.raises(CheckpointError, match="invalid architecture record: 'in_channels' must be a int"):
        load_model(checkpoint)
    content["architecture"]["in_channels"] = 1
    save_checkpoint(checkpoint, {k: v for k, v in content.items() if k not in ("format", "version")})

    def buggy_builder(*args, **kwargs):
        raise TypeError("a bug inside a model builder")
    monkeypatch.setattr(architecture_module, "create_model", buggy_builder)
    with pytest.raises(TypeError, match="a bug inside a model builder"):    # not "not a pipeline checkpoint"
        load_model(checkpoint)


def test_initial_weights_from_a_state_dict_without_matching_error_text(tmp_path):
    torch.manual_seed(1)
    reference = create_model("small_vgg", in_channels=1, num_classes=10, widths=[4, "M", 8])
    plain = tmp_path / "plain.pt"
    torch.save(reference.state_dict(), plain)
    recipe = {"name": "w", "data": {"dataset": "fake", "options": {"num_samples": 32}},
              "model": {"name": "small_vgg", "args": {"widths": [4, "M", 8]}, "checkpoint": str(plain)},
              "stages": [{"stage": "evaluate"}]}
    run_recipe(parse_recipe(recipe), tmp_path / "run", **QUIET)
    model, _ = load_model(tmp_path / "run" / "model.pt")
    torch.testing.assert_close(model.features[0].weight, reference.features[0].weight)
    plain.write_bytes(b"PK\x03\x04 damaged")                           # not read as a plain state_dict
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        run_recipe(parse_recipe({**recipe, "name": "w2"}), tmp_path / "run2", **QUIET)


@pytest.mark.parametrize("device, message", [
    ("bogus", "is not a device name"), ("meta", "runs on cpu or cuda"),
    pytest.param("cuda", "CUDA is not available", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_bad_devices_are_user_errors(checkpoint, device, message, capsys):
    assert main(["eval", str(checkpoint), "--dataset", "fake", "--device", device]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sparsewino: error: device") and message in err
    assert "unexpected" not in err


@pytest.mark.parametrize("threads", ["0", "-3", "two"])
def test_bad_thread_counts_are_usage_errors(checkpoint, threads, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--threads", threads, "inspect", str(checkpoint)])
    assert exit_info.value.code == 2 and "--threads" in capsys.readouterr().err


def test_engine_thread_counts_are_bounded():
    from sparsewino import engine
    from sparsewino.engine.modules import MAX_THREADS
    net = torch.nn.Sequential(torch.nn.Linear(4, 4)).eval()
    for threads in (0, -1, MAX_THREADS + 1, 100000, True):
        with pytest.raises(ValueError, match="threads"):
            engine.compile(net, threads=threads)
    assert engine.compile(net, threads=MAX_THREADS).threads == MAX_THREADS


@pytest.mark.parametrize("tamper, message", [
    (lambda a: a["args"].update(widths="abc"), "args {'widths': 'abc'} cannot be built"),
    (lambda a: a.update(transforms=[{"op": "convert", "tile": 99}]), "transforms[0]"),
])
def test_tampered_architecture_values_are_checkpoint_errors(checkpoint, tamper, message, capsys):
    content = torch.load(checkpoint, weights_only=True)
    tamper(content["architecture"])
    save_checkpoint(checkpoint, {k: v for k, v in content.items() if k not in ("format", "version")})
    with pytest.raises(CheckpointError, match="invalid architecture record"):
        load_model(checkpoint)
    assert main(["inspect", str(checkpoint)]) == 1
    err = capsys.readouterr().err
    assert message in err and "unexpected" not in err


def test_a_bad_backend_variable_is_a_user_error(checkpoint, monkeypatch, capsys):
    monkeypatch.setenv("SPARSEWINO_ENGINE_BACKEND", "avx999")
    assert main(["bench", str(checkpoint)]) == 1
    err = capsys.readouterr().err
    assert "'avx999' is not a backend" in err and "unexpected" not in err


class Payload:
    """A Python object a checkpoint must not bring in."""


def test_checkpoint_refusals_never_advise_unsafe_loading(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, evil)
    with pytest.raises(CheckpointError) as refused:
        load_model(evil)
    text = str(refused.value)
    assert "Payload" in text and "never runs code" in text
    assert "weights_only" not in text and "\x1b" not in text and "trust the source" not in text
    good = tmp_path / "good.pt"
    architecture = new_architecture("small_vgg", {"widths": [4, "M", 8]}, 1, 10)
    save_model(good, architecture_module.build_model(architecture), architecture)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CheckpointError) as damaged:
        load_model(truncated)
    text = str(damaged.value)
    assert "truncated or corrupt" in text and "checkpoint file is." not in text
    reason = text.split(": ", 1)[1].split(". The file")[0]
    assert not reason.endswith((" f", " fi")) and len(reason) <= 204


def test_a_loaded_checkpoint_still_says_how_it_was_pruned(tmp_path):
    from sparsewino.prune import pruning_info
    architecture = new_architecture("small_vgg", {"widths": [4, "M", 8]}, 1, 10)
    model = architecture_module.build_model(architecture)
    architecture_module.apply_transform(model, architecture, "convert", tile=4, domain="winograd")
    prune_model(model, "winograd_domain", 0.5)
    path = save_model(tmp_path / "m.pt", model, architecture, input_shape=[1, 1, 28, 28])
    loaded, _ = load_model(path)
    info = pruning_info(loaded.get_submodule("features.0"))
    assert info["method"] == "winograd_domain" and info["amount"] == pytest.approx(0.5)
    assert info == pruning_info(model.get_submodule("features.0"))
