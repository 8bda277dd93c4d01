"""Backend choice, the warning fallback when the library is missing/broken, and the pattern table."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from sparsewino import engine
from sparsewino.engine import kernels
from sparsewino.engine.kernels import patterns

from .conftest import COMPILED, assert_matches, needs_kernel, reference, sparse_layer


@pytest.fixture
def fresh_loader(monkeypatch):
    """Forget the loaded library so a test can make loading fail; restored afterwards."""
    saved = dict(kernels._state)
    monkeypatch.setattr(kernels, "_state", {**saved, "loaded": False, "lib": None, "path": None,
                                            "error": None, "warned": False, "available": None,
                                            "choices": {}})
    yield
    kernels._state.clear()
    kernels._state.update(saved)


def test_backend_names_and_override(monkeypatch):
    available = engine.available_backends()
    assert available[-1] == "torch" and engine.backend() == available[0]
    with engine.use_backend("torch") as name:
        assert name == "torch" and engine.backend() == "torch"
    assert engine.backend() == available[0]
    monkeypatch.setenv(kernels.ENV_VAR, "torch")
    assert engine.backend() == "torch"
    monkeypatch.setenv(kernels.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match="not a backend"):
        engine.backend()


@needs_kernel
def test_cpu_detection_matches_the_library():
    lib = kernels.library()
    assert lib.sw_isa_supported(kernels.ISA_CODES["portable"]) == 1
    has_avx2 = "avx2" in open("/proc/cpuinfo").read() if Path("/proc/cpuinfo").exists() else None
    if has_avx2 is not None:
        assert ("avx2" in COMPILED) == has_avx2


def test_missing_library_falls_back_to_torch_with_warning(fresh_loader, monkeypatch):
    monkeypatch.setattr(kernels, "library_path", lambda: None)
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
    monkeypatch.setattr(kernels, "library_path", lambda: bogus)
    assert kernels.library() is None
    assert "could not load" in kernels.load_error()
    assert engine.available_backends() == ["torch"]


def test_pattern_header_is_current():
    header = Path(kernels.__file__).with_name("sw_patterns.h").read_text()
    assert header == patterns.render_header(), (
        "sw_patterns.h is stale: python -m sparsewino.engine.kernels.patterns > sw_patterns.h")
    entries = patterns.specialised_patterns()
    assert {(e.n, e.m) for e in entries} >= {(4, 2), (6, 4), (8, 6)}
