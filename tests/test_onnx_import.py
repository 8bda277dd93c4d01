"""sparsewino.from_onnx: a CNN exported with torch.onnx.export comes back with the same outputs
(as PyTorch's and ONNX Runtime's), unconvertible operators are listed, and an ONNX ResNet goes
through a recipe (convert, prune), compile, save, load and the C API."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sparsewino
from sparsewino import engine
from sparsewino.models import create_model
from sparsewino.onnx_import import OnnxImportError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnx2torch") is None,
    reason="the optional onnx extra is missing (make onnx)")

warning_filter = pytest.mark.filterwarnings("ignore::DeprecationWarning")   # the TorchScript exporter


def _export(model: torch.nn.Module, shape: tuple[int, ...], path: Path) -> Path:
    with torch.no_grad():
        torch.onnx.export(model.eval(), (torch.zeros(shape),), str(path), dynamo=False,
                          opset_version=13, input_names=["x"], output_names=["y"])
    return path


@pytest.fixture(scope="module")
def resnet_onnx(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """An untrained ResNet (equal zero biases: the exporter shares them through Identity nodes)."""
    torch.manual_seed(0)
    model = create_model("resnet18_cifar_max", in_channels=3, width=4).eval()
    return model, _export(model, (1, 3, 16, 16), tmp_path_factory.mktemp("onnx") / "resnet.onnx")


@warning_filter
def test_round_trip_gives_the_same_outputs(resnet_onnx, tmp_path):
    model, path = resnet_onnx
    converted = sparsewino.from_onnx(path)
    assert "torchvision" not in sys.modules
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-5)
    torch.manual_seed(1)
    vgg = create_model("small_vgg", in_channels=1, widths=(4, "M", 8)).eval()
    xv = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(sparsewino.from_onnx(_export(vgg, xv.shape, tmp_path / "v.onnx"))(xv),
                                   vgg(xv), rtol=1e-5, atol=1e-5)


@warning_filter
@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                    reason="onnxruntime (the peers extra) is not installed")
def test_round_trip_equals_onnx_runtime(resnet_onnx):
    import onnxruntime
    _, path = resnet_onnx
    converted = sparsewino.from_onnx(path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x1 = torch.randn(1, 3, 16, 16)
    (expected,) = session.run(None, {"x": x1.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(converted(x1).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_unconvertible_operators_are_listed(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"),
             helper.make_node("Frobnicate", ["a"], ["b"], name="frob_0", domain="com.example"),
             helper.make_node("Frobnicate", ["b"], ["y"], name="frob_1", domain="com.example")]
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4])  # noqa: E731
    graph = helper.make_graph(nodes, "g", [value("x")], [value("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(tmp_path / "odd.onnx"))
    with pytest.raises(OnnxImportError, match=r"2 nodes have no converter in onnx2torch: "
                                              r"Frobnicate \(2: frob_0, frob_1\)"):
        sparsewino.from_onnx(tmp_path / "odd.onnx")


def test_bad_files_and_a_missing_extra_say_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "bad.onnx").write_bytes(b"\x00\x01 not protobuf at all \xff" * 3)
    with pytest.raises(OnnxImportError, match="is not a readable ONNX model"):
        sparsewino.from_onnx(tmp_path / "bad.onnx")
    with pytest.raises(OnnxImportError, match="no such ONNX file"):
        sparsewino.from_onnx(tmp_path / "missing.onnx")
    monkeypatch.setitem(sys.modules, "onnx2torch", None)          # as if not installed
    with pytest.raises(OnnxImportError, match=r"pip install --no-deps onnx2torch"):
        sparsewino.from_onnx(tmp_path / "bad.onnx")


@warning_filter
def test_an_onnx_resnet_through_a_recipe_compile_save_load_and_c(resnet_onnx, tmp_path):
    from sparsewino.recipes import load_model, parse_recipe, run_recipe
    _, path = resnet_onnx
    recipe = parse_recipe({
        "name": "onnx_resnet", "seed": 0, "tile": 2,
        "data": {"dataset": "fake", "options": {"num_samples": 16, "image_size": 16,
                                                "channels": 3}, "eval_batch_size": 16},
        "model": {"onnx": str(path)},
        "stages": [{"stage": "convert", "name": "to_winograd", "domain": "winograd", "tile": 2},
                   {"stage": "prune", "name": "prune", "method": "winograd_domain",
                    "amount": 0.5},
                   {"stage": "evaluate", "name": "final"}]})
    assert recipe.model.name == "onnx" and recipe.model.args == {"path": str(path)}
    run_recipe(recipe, tmp_path / "run", progress=False, log=lambda message: None)
    model, _ = load_model(tmp_path / "run")                  # rebuilt from the ONNX file
    fast = engine.compile(model)
    layers = [m for m in fast.modules() if isinstance(m, engine.SparseWinogradConv2d)]
    assert len(layers) == 17 and all(0.4 < layer.density() <= 0.5 for layer in layers)
    x = torch.randn(2, 3, 16, 16)
    assert fast.program(x).torch_nodes == []
    artifact = engine.save(fast, tmp_path / "resnet.swe", shapes=[x.shape])
    with torch.no_grad():
        expected = fast(x)
        torch.testing.assert_close(expected, model(x), rtol=1e-4, atol=1e-4)
    assert torch.equal(engine.load(artifact)(x), expected)
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler for the C part")
    from sparsewino import native
    root = Path(__file__).resolve().parents[1]
    library, program = native.library_path(), tmp_path / "run_model"
    subprocess.run([compiler, str(root / "examples" / "c" / "run_model.c"),
                    f"-I{Path(native.__file__).parent / 'include'}", str(library),
                    f"-Wl,-rpath,{library.parent}", "-lpthread", "-o", str(program)],
                   check=True, timeout=120)
    x.numpy().tofile(tmp_path / "in.f32")
    subprocess.run([str(program), str(artifact), str(tmp_path / "in.f32"),
                    str(tmp_path / "out.f32")], check=True, capture_output=True, timeout=60)
    got = np.fromfile(tmp_path / "out.f32", dtype=np.float32).reshape(expected.shape)
    assert torch.equal(torch.from_numpy(got), expected)
