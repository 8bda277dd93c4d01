"""Backend choice, the warning fallback when the library is missing/broken, and the pattern table."""
from __future__ import annotations

import ctypes
import warnings
from pathlib import Path

import pytest
import torch

from sparsewino import engine
from sparsewino.engine import kernels
from sparsewino.engine.kernels import patterns
from sparsewino.native.backends import Backend, get_backend, register_backend, registered_backends

from .conftest import COMPILED, assert_matches, cpu_flags, needs_kernel, reference, sparse_layer


@pytest.fixture(autouse=True)
def automatic_choice(monkeypatch):
    """These tests are about the automatic choice: a backend forced from the environment
    (``SPARSEWINO_ENGINE_BACKEND=avx512 make test``) must not change what they see."""
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)


def _first_verified(available: list[str]) -> str:
    return next(name for name in available if get_backend(name).verified)


@pytest.fixture
def fresh_loader(fresh_native):
    """Forget the loaded library so a test can make loading fail; restored afterwards."""
    return fresh_native


def test_backend_names_and_override(monkeypatch):
    available = engine.available_backends()
    automatic = _first_verified(available)
    assert available[-1] == "torch" and engine.backend() == automatic
    with engine.use_backend("torch") as name:
        assert name == "torch" and engine.backend() == "torch"
    assert engine.backend() == automatic
    monkeypatch.setenv(kernels.ENV_VAR, "torch")
    assert engine.backend() == "torch"
    monkeypatch.setenv(kernels.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match="not a backend"):
        engine.backend()


@needs_kernel
def test_cpu_detection_matches_the_library():
    lib = kernels.library()
    flags = cpu_flags()
    for entry in registered_backends():
        if entry.isa is None:
            continue
        assert lib.sw_isa_compiled(entry.isa) == 1, f"{entry.name} not compiled in"
        expected = all(flag in flags for flag in entry.cpu_flags)
        assert (entry.name in COMPILED) == expected, entry.name
        assert lib.sw_isa_lanes(entry.isa) in (8, 16)


def test_registry_and_automatic_choice():
    names = [b.name for b in registered_backends()]
    assert names == ["avx512", "avx2", "portable", "torch"]
    with pytest.raises(ValueError, match="already registered"):
        register_backend(Backend("avx2", 2, 1, True, "duplicate"))
    with pytest.raises(ValueError, match="not a backend"):
        get_backend("fastest")
    chosen = engine.backend()
    assert kernels.backend_info(chosen).verified               # never an unverified one
    available = engine.available_backends()
    assert chosen == _first_verified(available)


def test_forcing_a_backend_the_cpu_lacks_is_a_clear_error(monkeypatch, fresh_loader):
    """Never an illegal instruction: a build the CPU cannot run is refused by name."""
    missing = [b for b in registered_backends()
               if b.isa is not None and b.name not in kernels.available_backends()]
    if not missing:
        pytest.skip("this CPU runs every build")
    monkeypatch.setenv(kernels.ENV_VAR, missing[0].name)
    with pytest.raises(RuntimeError, match="lacks|not available"):
        engine.backend()
    lib = kernels.library()                    # the library itself refuses too
    layer = engine.SparseWinogradConv2d.from_layer(sparse_layer(3, 4))
    args = layer.fill_args(1, 8, 8, 1, "portable")
    args.isa = missing[0].isa
    x, y, ws = torch.randn(1, 3, 8, 8), torch.empty(1, 4, 8, 8), torch.empty(1 << 16)
    args.x, args.y, args.workspace, args.workspace_floats = (x.data_ptr(), y.data_ptr(),
                                                             ws.data_ptr(), ws.numel())
    assert lib.sw_conv2d_forward(ctypes.byref(args)) == -4


def test_missing_library_falls_back_to_torch_with_warning(fresh_loader, monkeypatch):
    monkeypatch.setattr(fresh_loader, "library_path", lambda: None)
    layer = sparse_layer(3, 4, sparsity=0.5)
    with pytest.warns(RuntimeWarning, match="not built"):
        fast = engine.compile(layer)
    assert fast.compile_report.backend == "torch"
    x = torch.randn(1, 3, 9, 9)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")                       # warned once, not per call
        assert_matches(fast(x), reference(layer, x))
    with pytest.raises(RuntimeError, match="not available"), engine.use_backend("avx2"):
        pass


def test_broken_library_is_reported(fresh_loader, monkeypatch, tmp_path):
    bogus = tmp_path / "_sw_kernels.so"
    bogus.write_text("not a shared library")
    monkeypatch.setattr(fresh_loader, "library_path", lambda: bogus)
    assert kernels.library() is None
    assert "could not load" in kernels.load_error()
    assert engine.available_backends() == ["torch"]


def test_pattern_header_is_current():
    header = Path(kernels.__file__).with_name("sw_patterns.h").read_text()
    assert header == patterns.render_header(), (
        "sw_patterns.h is stale: python -m sparsewino.engine.kernels.patterns > sw_patterns.h")
    entries = patterns.specialised_patterns()
    assert {(e.n, e.m) for e in entries} >= {(4, 2), (6, 4), (8, 6)}
