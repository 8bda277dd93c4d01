"""Shared test settings (deterministic, single-threaded torch, hypothesis profile) and file writers."""
import gzip
import os
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(int(os.environ.get("SPARSEWINO_TEST_THREADS", "1")))
settings.register_profile("default", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=400,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _write_idx(path, array: np.ndarray, compress: bool) -> None:
    codes = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
             np.float64: 0x0E}
    code = codes[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(payload)


def _write_mnist(root, n_train=12, n_test=5, compress=True, dotted=False, seed=0):
    rng = np.random.default_rng(seed)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        sep = "." if dotted else "-"
        suffix = ".gz" if compress else ""
        _write_idx(root / f"{prefix}-images{sep}idx3-ubyte{suffix}", images, compress)
        _write_idx(root / f"{prefix}-labels{sep}idx1-ubyte{suffix}", labels, compress)
        data[prefix] = (images, labels)
    return data


@pytest.fixture
def write_idx():
    """``write_idx(path, array, compress)``: an idx(.gz) file in the real format."""
    return _write_idx


@pytest.fixture
def write_mnist():
    """``write_mnist(root, n_train=12, n_test=5, ...)``: the four MNIST idx files; returns the arrays."""
    return _write_mnist


@pytest.fixture
def fresh_native(monkeypatch):
    """An unloaded copy of the native library and a forgotten backend choice (restored
    afterwards), so that a test can make loading fail or change what the CPU check says."""
    from sparsewino.native import backends, handle
    monkeypatch.delenv(backends.ENV_VAR, raising=False)     # the automatic choice, whatever is set
    monkeypatch.setattr(backends, "_state", {"warned": False, "available": None, "choices": {}})
    monkeypatch.setattr(handle, "LIBRARY", handle.LIBRARY.fresh())
    return handle
