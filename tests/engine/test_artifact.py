"""engine.save / engine.load: bit-identical outputs in a fresh process without the model's class,
batch pieces, and a clear error for every bad file."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from sparsewino import engine
from sparsewino import prune as sp
from sparsewino.engine import kernels
from sparsewino.engine.artifact import container, runtime
from sparsewino.errors import ArtifactError
from sparsewino.models import create_model
from sparsewino.nn import WinogradConv2d, convert

from .conftest import COMPILED, needs_kernel, randomize_batchnorm

# A forced `torch` backend builds no program: these modules run on the automatic compiled one.
pytestmark = [needs_kernel, pytest.mark.usefixtures("native_backend")]


def _model(name: str, channels: int, **options) -> nn.Module:
    torch.manual_seed(0)
    model, _ = convert(create_model(name, in_channels=channels, **options))
    randomize_batchnorm(model)
    for module in model.modules():
        if isinstance(module, WinogradConv2d):
            prune.l1_unstructured(module, "weight", amount=0.5)
    return model.eval()


def _blocked_model() -> nn.Module:
    """Winograd-domain small VGG pruned in blocks of 8 output channels: blocked matrices (their
    block pointers, columns and values are data the artifact must carry)."""
    torch.manual_seed(0)
    model, _ = convert(create_model("small_vgg", in_channels=1, widths=(8, "M", 16, 16)),
                       domain="winograd")
    randomize_batchnorm(model)
    sp.prune_model(model, "winograd_domain", 0.5, block=8)
    return model.eval()


MODELS = {
    "vgg": (lambda: _model("small_vgg", 1, widths=(8, "M", 16, 16)), (1, 28, 28), {}),
    "resnet": (lambda: _model("resnet18_cifar_max", 3, width=4), (3, 16, 16), {}),
    # bf16 weights (2-byte sparse values, 4-byte dense pairs) and fp16 fallbacks saved as data
    "vgg-bf16": (lambda: _model("small_vgg", 1, widths=(8, "M", 16, 16)), (1, 28, 28),
                 {"precision": "bf16"}),
    "vgg-blocks": (_blocked_model, (1, 28, 28), {}),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Per model: the artifact (batch 1 and 3 saved), inputs and the compiled model's outputs."""
    root = tmp_path_factory.mktemp("artifacts")
    cases = {}
    for name, (build, image, options) in MODELS.items():
        fast = engine.compile(build(), **options)
        path = engine.save(fast, root / f"{name}.swe", shapes=[(1, *image), (3, *image)])
        inputs = {batch: torch.randn(batch, *image) for batch in (1, 3, 4)}
        with torch.no_grad():
            outputs = {batch: fast(x) for batch, x in inputs.items()}
        cases[name] = (path, inputs, outputs, fast)
    return cases


FRESH = textwrap.dedent("""
    import sys, numpy as np, torch
    from sparsewino import engine
    for path in sys.argv[1:]:
        model = engine.load(path)
        for batch in (1, 3, 4):
            x = torch.from_numpy(np.load(f"{path}.in{batch}.npy"))
            np.save(f"{path}.out{batch}.npy", model(x).numpy())
    import json
    print(json.dumps(sorted(m for m in sys.modules if m.startswith("sparsewino."))))
""")


def test_outputs_in_a_fresh_process_are_bit_identical_without_the_model_class(saved):
    paths = []
    for path, inputs, _, _ in saved.values():
        for batch, x in inputs.items():
            np.save(f"{path}.in{batch}.npy", x.numpy())
        paths.append(str(path))
    result = subprocess.run([sys.executable, "-c", FRESH, *paths], capture_output=True, text=True,
                            timeout=120, check=True)
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert "sparsewino.engine.artifact.runtime" in modules
    assert not any(m.startswith(("sparsewino.models", "sparsewino.recipes", "sparsewino.train"))
                   for m in modules), modules
    for path, _, outputs, _ in saved.values():
        for batch, expected in outputs.items():
            got = torch.from_numpy(np.load(f"{path}.out{batch}.npy"))
            assert torch.equal(got, expected), (path, batch)


def test_header_records_how_it_was_compiled(saved):
    path, _, _, fast = saved["resnet"]
    model = engine.load(path)
    header = model.header
    assert header["backend"] == engine.backend() and header["abi_version"] == kernels.ABI_VERSION
    assert header["precision"] == "fp32" and header["input_shapes"] == [[1, 3, 16, 16],
                                                                        [3, 3, 16, 16]]
    assert model.compile_report == str(fast.compile_report)
    compiled = [row for row in header["layers"] if row["kernel"] == "sparse-winograd"]
    assert compiled and all("tile" in row and len(row["formats"]) == (row["tile"] + 2) ** 2
                            for row in compiled)
    assert model.output_shapes == [(1, 10), (3, 10)]
    assert engine.load(saved["vgg-bf16"][0]).header["precision"] == "bf16"


def test_other_batch_sizes_run_in_pieces_other_images_are_refused(saved):
    path, inputs, outputs, fast = saved["vgg"]
    model = engine.load(path)
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), torch.cat([fast(x[:3]), fast(x[3:4]), fast(x[4:])]))
    with pytest.raises(ArtifactError, match=r"\(1, 1, 28, 28\), \(3, 1, 28, 28\).*none for "
                                            r"\(1, 1, 32, 32\).*--tune-shape 1x1x32x32"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(TypeError, match="float32"):
        model(torch.randn(1, 1, 28, 28, dtype=torch.float64))


def test_models_with_pytorch_steps_cannot_be_saved(tmp_path):
    net = nn.Sequential(WinogradConv2d(1, 4, 3, padding=1), nn.Sigmoid()).eval()
    with pytest.raises(ArtifactError, match=r"PyTorch steps \['_1'\]|PyTorch steps \['1'\]"):
        engine.save(engine.compile(net), tmp_path / "m.swe", shapes=[(1, 1, 8, 8)])
    with pytest.raises(ArtifactError, match="no input shape"):
        engine.save(engine.compile(nn.Sequential(WinogradConv2d(1, 4, 3, padding=1)).eval()),
                    tmp_path / "m.swe")
    with pytest.raises(ArtifactError, match="CompiledModel"):
        engine.save(net, tmp_path / "m.swe", shapes=[(1, 1, 8, 8)])


@pytest.fixture
def small(tmp_path):
    """A small artifact's bytes and where to write variants of it."""
    fast = engine.compile(nn.Sequential(WinogradConv2d(1, 4, 3, padding=1), nn.ReLU()).eval())
    path = engine.save(fast, tmp_path / "good.swe", shapes=[(2, 1, 8, 8)])
    return path.read_bytes(), tmp_path


def _resealed(data: bytearray) -> bytes:
    """``data`` with a valid checksum again (a well-formed file with edited fields)."""
    crc = zlib.crc32(memoryview(data)[80:], zlib.crc32(memoryview(data)[:72]))
    struct.pack_into("<I", data, 72, crc)
    return bytes(data)


def _variants(good: bytes) -> dict[str, tuple[bytes, str]]:
    newer = bytearray(good)
    struct.pack_into("<I", newer, 8, container.FORMAT_VERSION + 1)
    abi = bytearray(good)
    struct.pack_into("<I", abi, 12, kernels.ABI_VERSION - 1)
    tampered = bytearray(good)
    tampered[-5] ^= 0xFF
    return {
        "foreign": (b"PK\x03\x04" + good[4:], "not a sparsewino engine artifact"),
        "empty": (b"", "not a sparsewino engine artifact"),
        "pickle": (b"\x80\x04\x95" + bytes(100), "not a sparsewino engine artifact"),
        "preamble": (good[:40], r"truncated \(40 bytes, less than the 80-byte preamble"),
        "truncated": (good[:-100], f"truncated \\({len(good) - 100} bytes, {len(good)} written"),
        "tampered": (bytes(tampered), "fails its checksum: it was modified or corrupted"),
        "newer": (_resealed(newer), f"format version {container.FORMAT_VERSION + 1}; this "
                                    f"sparsewino reads versions up to {container.FORMAT_VERSION}"),
        "abi": (_resealed(abi), f"kernel ABI version {kernels.ABI_VERSION - 1}; this library has "
                                f"version {kernels.ABI_VERSION}"),
    }


@pytest.mark.parametrize("case", ["foreign", "empty", "pickle", "preamble", "truncated",
                                  "tampered", "newer", "abi"])
def test_bad_files_give_clear_errors(small, case):
    good, tmp_path = small
    data, message = _variants(good)[case]
    path = tmp_path / f"{case}.swe"
    path.write_bytes(data)
    with pytest.raises(ArtifactError, match=message):
        engine.load(path)


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ArtifactError, match="no such artifact file.*sparsewino export"):
        engine.load(tmp_path / "nope.swe")


def test_the_header_is_plain_json_and_the_file_holds_no_pickle(small):
    good, _ = small
    offset, size = struct.unpack_from("<QQ", good, 16)
    header = json.loads(good[offset:offset + size])
    assert header["format"] == "sparsewino-engine" and b"\x80\x04\x95" not in good


@pytest.mark.skipif(len(COMPILED) < 2, reason="needs two compiled backends")
def test_a_backend_this_cpu_lacks_falls_back_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)      # the automatic choice is under test
    net = nn.Sequential(WinogradConv2d(2, 4, 3, padding=1), nn.ReLU()).eval()
    x = torch.randn(1, 2, 9, 9)
    with engine.use_backend(COMPILED[0]):
        fast = engine.compile(net)
        expected = fast(x)
        path = engine.save(fast, tmp_path / "m.swe", shapes=[x.shape])
    monkeypatch.setattr(runtime.kernels, "available_backends",
                        lambda: [name for name in COMPILED[1:]] + ["torch"])
    with pytest.warns(RuntimeWarning, match=f"planned for backend '{COMPILED[0]}'"):
        model = engine.load(path)
    assert model.backend == COMPILED[1]
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert engine.load(path, backend="portable").backend == "portable"


def test_files_are_written_atomically_and_reproducibly(tmp_path):
    fast = engine.compile(nn.Sequential(WinogradConv2d(1, 4, 3, padding=1), nn.ReLU()).eval())
    first = engine.save(fast, tmp_path / "a.swe", shapes=[(2, 1, 8, 8)]).read_bytes()
    fast(torch.randn(1, 1, 8, 8))                  # run in between: stale pointers are not saved
    second = engine.save(fast, tmp_path / "b.swe", shapes=[(2, 1, 8, 8)]).read_bytes()
    assert first == second and first[:8] == container.MAGIC
    assert not list(tmp_path.glob("*.tmp"))


@needs_kernel
def test_a_model_ending_in_a_view_loads_with_its_output_shape(tmp_path, native_backend):
    """The program's result is a whole view of its output buffer (Flatten after pooling): the
    artifact returns the model's shape, not the buffer's (it returned (N, C, 1, 1))."""
    net = nn.Sequential(WinogradConv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten()).eval()
    x = torch.randn(2, 3, 11, 9)
    with torch.no_grad():
        fast = engine.compile(net)
        expected = fast(x)
    loaded = engine.load(engine.save(fast, tmp_path / "flat.swe", shapes=[tuple(x.shape)]))
    assert loaded(x).shape == expected.shape == (2, 8) and torch.equal(loaded(x), expected)


def test_blocked_matrices_are_saved(saved):
    """The block-pruned model compiles to blocked matrices, and they survive the file (the
    fresh-process test above compares its outputs bit for bit)."""
    path, _, _, fast = saved["vgg-blocks"]
    counts = [layer.format_counts()["blocked"] for layer in fast.modules()
              if hasattr(layer, "format_counts")]
    assert sum(counts) > 0
    loaded = engine.load(path)
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), fast(x))
