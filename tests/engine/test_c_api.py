"""The C API (sparsewino.h): the example program, built with the system C compiler, gives the
same outputs as Python on the same artifact, from several threads at once; bad files get the
same clear errors as in Python."""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sparsewino import engine, native
from sparsewino import prune as sp
from sparsewino.engine import kernels
from sparsewino.models import create_model
from sparsewino.nn import WinogradConv2d, convert

from .conftest import needs_kernel
from .test_artifact import _variants

# A forced `torch` backend builds no program: these modules run on the automatic compiled one.
pytestmark = [needs_kernel, pytest.mark.usefixtures("native_backend")]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "c" / "run_model.c"
HEADER_DIR = Path(native.__file__).resolve().parent / "include"
COMPILER = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
STATUS = {"SW_MODEL_OK": 0, "SW_MODEL_ERR_IO": -101, "SW_MODEL_ERR_FORMAT": -102,
          "SW_MODEL_ERR_VERSION": -103, "SW_MODEL_ERR_ARGS": -104}


def test_the_header_is_installed_with_the_package_and_its_codes_match():
    text = (HEADER_DIR / "sparsewino.h").read_text()
    for name, value in STATUS.items():
        assert f"{name} = {value}" in text


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    if COMPILER is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH to build examples/c/run_model.c")
    library = native.library_path()
    out = tmp_path_factory.mktemp("c") / "run_model"
    subprocess.run([COMPILER, "-std=c11", "-Wall", "-Werror", "-O1", str(EXAMPLE),
                    f"-I{HEADER_DIR}", str(library), f"-Wl,-rpath,{library.parent}", "-lpthread",
                    "-o", str(out)], check=True, timeout=120)
    return out


@pytest.mark.parametrize("blocks", [False, True])
def test_the_c_example_equals_python_from_several_threads(program, tmp_path, blocks):
    """Also with blocked matrices (pruned in blocks of 8 output channels)."""
    torch.manual_seed(0)
    model, _ = convert(create_model("small_vgg", in_channels=1, widths=(8, "M", 16)),
                       domain="winograd" if blocks else "spatial")
    if blocks:
        sp.prune_model(model, "winograd_domain", 0.5, block=8)
    fast = engine.compile(model.eval())
    assert (sum(m.format_counts()["blocked"] for m in fast.modules()
                if hasattr(m, "format_counts")) > 0) == blocks
    path = engine.save(fast, tmp_path / "vgg.swe", shapes=[(1, 1, 28, 28), (2, 1, 28, 28)])
    for index, batch in enumerate((1, 2)):
        x = torch.randn(batch, 1, 28, 28)
        x.numpy().tofile(tmp_path / "in.f32")
        result = subprocess.run([str(program), str(path), str(tmp_path / "in.f32"),
                                 str(tmp_path / "out.f32"), str(index), "3"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert f"input ({batch}, 1, 28, 28)" in result.stdout and "ran 3 time(s): ok" in result.stdout
        got = np.fromfile(tmp_path / "out.f32", dtype=np.float32).reshape(batch, 10)
        with torch.no_grad():
            assert torch.equal(torch.from_numpy(got), fast(x))
        assert torch.equal(torch.from_numpy(got), engine.load(path)(x))


def test_the_c_example_reports_a_bad_file(program, tmp_path):
    path = tmp_path / "bad.swe"
    path.write_bytes(b"PK\x03\x04 not an artifact")
    result = subprocess.run([str(program), str(path), "in", "out"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "is not a sparsewino engine artifact" in result.stderr


def _load(path: Path) -> tuple[int, str, ctypes.c_void_p]:
    lib = native.library()
    lib.sw_model_load.restype = ctypes.c_int
    lib.sw_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.c_char_p, ctypes.c_size_t]
    handle, error = ctypes.c_void_p(), ctypes.create_string_buffer(512)
    status = lib.sw_model_load(str(path).encode(), ctypes.byref(handle), error, 512)
    return status, error.value.decode(), handle


@pytest.mark.parametrize("case,status", [
    ("foreign", "SW_MODEL_ERR_FORMAT"), ("empty", "SW_MODEL_ERR_FORMAT"),
    ("preamble", "SW_MODEL_ERR_FORMAT"), ("truncated", "SW_MODEL_ERR_FORMAT"),
    ("tampered", "SW_MODEL_ERR_FORMAT"), ("newer", "SW_MODEL_ERR_VERSION"),
    ("abi", "SW_MODEL_ERR_VERSION")])
def test_the_c_loader_refuses_bad_files_like_python(tmp_path, case, status):
    fast = engine.compile(nn.Sequential(WinogradConv2d(1, 4, 3, padding=1), nn.ReLU()).eval())
    good = engine.save(fast, tmp_path / "good.swe", shapes=[(2, 1, 8, 8)]).read_bytes()
    data, _ = _variants(good)[case]
    path = tmp_path / f"{case}.swe"
    path.write_bytes(data)
    code, error, handle = _load(path)
    assert code == STATUS[status] and not handle.value
    words = {"foreign": "not a sparsewino engine artifact", "empty": "not a sparsewino",
             "preamble": "truncated", "truncated": "truncated", "tampered": "fails its checksum",
             "newer": "format version", "abi": f"kernel ABI version {kernels.ABI_VERSION - 1}"}
    assert words[case] in error, error


def test_the_c_loader_names_a_missing_file(tmp_path):
    code, error, _ = _load(tmp_path / "missing.swe")
    assert code == STATUS["SW_MODEL_ERR_IO"] and "cannot open" in error
