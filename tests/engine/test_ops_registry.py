"""The registry of engine operation kinds: what each kind takes, and adding one in one file."""
from __future__ import annotations

import operator
from typing import Sequence

import pytest
import torch
from torch import fx, nn
from torch.nn.utils import prune

from sparsewino import engine
from sparsewino.engine import kernels, ops
from sparsewino.engine.modules import CompiledLayer
from sparsewino.engine.ops.base import Emitter, NodeOp, UnsupportedGraph
from sparsewino.engine.ops.eltwise import eltwise
from sparsewino.engine.program import Program
from sparsewino.nn import AdderConv2d, WinogradConv2d, WinogradConv3d

from .conftest import COMPILED, needs_kernel


def test_every_kind_answers_the_protocol():
    assert list(ops.COMPILED_KINDS) == ["adder", "conv2d", "conv3d", "direct", "dwm", "gemm"]
    assert {"pool2d", "pool3d", "relu", "add", "affine", "alias", "size"} <= set(ops.NODE_OPS)
    for kind in ops.COMPILED_KINDS.values():
        assert kind.description and issubclass(kind.compiled_type, CompiledLayer)
        assert kind.report in ("sparse-winograd", "sparse-gemm", "sparse-direct", "adder")
        assert kind.counts in ("winograd", "adder", None) and kind.dims in (2, 3)
    for op in ops.NODE_OPS.values():
        assert op.description and op.name
    with pytest.raises(ValueError, match="already registered"):
        ops.register_node_op(ops.NODE_OPS["relu"])
    with pytest.raises(ValueError, match="already registered"):
        ops.register_kind(type("Clash", (ops.CompiledKind,), {"name": "pool2d"})())


@pytest.mark.parametrize("module, name, refused", [
    (WinogradConv2d(3, 4, 3, padding=1), "conv2d", None),
    (WinogradConv2d(3, 4, 3, stride=2, padding=1), "dwm", None),
    (WinogradConv2d(3, 4, 5, padding=2), "dwm", None),
    (WinogradConv3d(3, 4, 3, padding=1, tile=2), "conv3d", None),
    (nn.Linear(5, 6), "gemm", None),
    (nn.Conv2d(5, 6, 1, stride=2), "gemm", None),
    (nn.Conv2d(5, 6, 3), "direct", "weight density 1.00"),
    (prune.l1_unstructured(nn.Conv2d(5, 6, 3, stride=2, padding=1), "weight", amount=0.7), "direct", None),
    (nn.Conv2d(5, 6, 1, padding=1), "direct", "weight density"),
    (nn.Conv2d(6, 6, 3, groups=3), "direct", "groups 1"),
    (WinogradConv2d(3, 4, 3, padding=1).double(), "conv2d", "float64"),
    (AdderConv2d(3, 4, 3, stride=2, padding=1), "adder", None),
    (nn.ReLU(), None, None),
])
def test_source_kinds_and_their_reasons(module, name, refused):
    kind = ops.source_kind(module)
    assert (kind.name if kind else None) == name
    if kind is None:
        return
    reason = kind.reason(module)
    assert (reason is None) == (refused is None)
    if refused:
        assert refused in reason
        return
    compiled = kind.build(module.eval(), ops.BuildOptions())
    assert ops.compiled_kind(compiled) is kind
    assert kind.describe(compiled)


def test_node_ops_of_a_traced_graph():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn, self.pool = nn.BatchNorm2d(3).eval(), nn.MaxPool2d(2)

        def forward(self, x):
            y = torch.relu(self.bn(x)) + x
            return self.pool(y).flatten(1).size(1) * 0 + self.pool(y).view(x.size(0), -1)

    gm = fx.symbolic_trace(Net())
    modules = dict(gm.named_modules())
    found = {ops.node_op(node, modules) for node in gm.graph.nodes}
    assert {"affine", "relu", "add", "pool2d", "alias", "size"} <= found


class ScaleByConstant(NodeOp):
    """A kind added the documented way: ``x * c`` for a Python number c as an affine map."""

    name = "test-scale"
    description = "x * constant (test)"

    def matches(self, node: fx.Node, module: nn.Module | None) -> bool:
        return node.op == "call_function" and node.target is operator.mul and \
            isinstance(node.args[0], fx.Node) and isinstance(node.args[1], (int, float))

    def lower(self, emitter: Emitter, node: fx.Node, module: nn.Module | None,
              inputs: Sequence[int], out_shape: tuple[int, ...]) -> int:
        if len(out_shape) < 2:
            raise UnsupportedGraph(f"{node.name}: no channel dimension")
        scale = torch.full((out_shape[1],), float(node.args[1]))
        shift = torch.zeros(out_shape[1])
        emitter.keep(scale)
        emitter.keep(shift)
        return eltwise(emitter, kernels.ELTWISE_AFFINE, inputs[0], None, out_shape, False,
                       scale, shift)


@pytest.fixture
def scale_op():
    op = ops.register_node_op(ScaleByConstant())
    yield op
    ops.NODE_OPS.unregister(op.name)


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_a_registered_node_op_reaches_compile_and_the_program(scale_op, backend):
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = WinogradConv2d(3, 5, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x) * 1.5)

    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(2, 3, 7, 9)
    with engine.use_backend(backend):
        fast = engine.compile(net)
        program = fast.program(x)
        with torch.no_grad():
            got = fast(x)
    assert program is not None and program.torch_nodes == []
    assert [op.op for s in program.steps for op in s.ops] == ["conv2d", "eltwise"]
    assert any(entry.detail == "test-scale" for entry in fast.compile_report)
    with torch.no_grad():
        ref = net.double()(x.double())
    assert (got.double() - ref).abs().max() < 1e-4 * max(1.0, ref.abs().max().item())


@needs_kernel
def test_the_emitter_refuses_an_unknown_operation():
    gm = fx.symbolic_trace(nn.Sequential(nn.ReLU()))
    program = Program(gm, torch.randn(1, 2, 3, 3), 1, COMPILED[0])
    with pytest.raises(ValueError, match="unknown engine operation"):
        program.emit("conv9d", None, [], (1,))


class ClonePerImage(NodeOp):
    """``x.clone()`` as one copy per image written into views of one new value (the way a kind
    writes a batch in parts, e.g. the adder layer's per-image products)."""

    name = "test-clone"
    description = "x.clone() per image (test)"

    def matches(self, node: fx.Node, module: nn.Module | None) -> bool:
        return node.op == "call_method" and node.target == "clone"

    def lower(self, emitter: Emitter, node: fx.Node, module: nn.Module | None,
              inputs: Sequence[int], out_shape: tuple[int, ...]) -> int:
        batch, per_image = out_shape[0], int(torch.Size(out_shape[1:]).numel())
        y = emitter.new(out_shape)
        for b in reversed(range(batch)):                 # any order: each view is one image
            source = emitter.view(inputs[0], b * per_image, out_shape[1:])
            copy = emitter.view(y, b * per_image, out_shape[1:])
            emitter.emit("eltwise", _copy_args(emitter, per_image), [("a", source)],
                         out_shape[1:], into=copy)
        with pytest.raises(UnsupportedGraph, match="does not fit"):
            emitter.view(y, per_image * batch, (1,))
        return y


def _copy_args(emitter: Emitter, count: int) -> kernels.SwEltwiseArgs:
    return kernels.eltwise_args(kernels.ELTWISE_COPY, False, (count,), emitter.threads, emitter.isa)


@needs_kernel
@pytest.mark.parametrize("backend", COMPILED)
def test_views_let_operations_write_one_value_in_parts(backend):
    op = ops.register_node_op(ClonePerImage())
    try:
        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv = WinogradConv2d(3, 4, 3, padding=1)

            def forward(self, x):
                y = self.conv(x).clone()
                return torch.sigmoid(y) + torch.relu(y)      # a PyTorch step reads the value too

        torch.manual_seed(1)
        net = Net().eval()
        x = torch.randn(3, 3, 6, 5)
        with engine.use_backend(backend), torch.no_grad():
            fast = engine.compile(net)
            program = fast.program(x)
            got = fast(x)
        assert "sigmoid" in program.torch_nodes and "clone" not in program.torch_nodes
        with torch.no_grad():
            ref = net.double()(x.double())
        assert (got.double() - ref).abs().max() < 1e-4 * max(1.0, ref.abs().max().item())
    finally:
        ops.NODE_OPS.unregister(op.name)
