"""ONNX models in: :func:`from_onnx` turns an ``.onnx`` file into a ``torch.nn`` model with onnx2torch.

The converter is the optional extra ``onnx`` (``pip install "sparsewino[onnx]"`` then
``pip install --no-deps onnx2torch``: onnx2torch's metadata asks for torchvision, which only its
NonMaxSuppression and RoiAlign converters use, and installing torchvision could replace the
torch build; ``make onnx`` does both). Without torchvision those two operators are reported as
not convertible; everything else converts.

The result is a ``torch.fx.GraphModule`` whose convolutions are plain ``nn.Conv2d``, so
:func:`sparsewino.nn.convert`, every pruning method and :func:`sparsewino.engine.compile`
take it like any other model. Operators onnx2torch has no converter for are listed all at
once in an :class:`OnnxImportError` before anything is converted.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError

__all__ = ["from_onnx", "unsupported_operators", "input_output_channels", "OnnxImportError",
           "INSTALL_HINT"]

INSTALL_HINT = ('install the optional extra: pip install "sparsewino[onnx]" && '
                "pip install --no-deps onnx2torch (or make onnx)")
#: Operators whose onnx2torch converters need torchvision.
TORCHVISION_OPERATORS = ("NonMaxSuppression", "RoiAlign")


class OnnxImportError(UserError, ValueError):
    """An ONNX file that cannot become a torch model: the extra is missing, the file is not a
    readable ONNX model, or it has operators without a converter (the message lists them)."""


class _NeedsTorchvision(types.ModuleType):
    """Stands in for torchvision while onnx2torch imports: using it says what is missing."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise OnnxImportError(f"this ONNX operator ({', '.join(TORCHVISION_OPERATORS)}) needs "
                              "torchvision, which sparsewino does not install")


def _roi_align_needs_torchvision(*args: Any, **kwargs: Any) -> Any:
    raise OnnxImportError("the ONNX operator RoiAlign needs torchvision, which sparsewino does not "
                          "install")


@contextlib.contextmanager
def _without_torchvision() -> Iterator[None]:
    """Let onnx2torch import where torchvision is absent (its two detection converters import
    it at module level); the stand-in leaves ``sys.modules`` afterwards."""
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    stub, ops = _NeedsTorchvision("torchvision"), _NeedsTorchvision("torchvision.ops")
    ops.roi_align = _roi_align_needs_torchvision
    stub.ops = ops
    sys.modules.update({"torchvision": stub, "torchvision.ops": ops})
    try:
        yield
    finally:
        for name, module in (("torchvision", stub), ("torchvision.ops", ops)):
            if sys.modules.get(name) is module:
                del sys.modules[name]


def _converter() -> tuple[Any, Any]:
    """The ``onnx`` and ``onnx2torch`` modules, or an :class:`OnnxImportError` saying how to
    install them."""
    try:
        import onnx
        with _without_torchvision():
            import onnx2torch
    except ImportError as exc:
        raise OnnxImportError(f"sparsewino.from_onnx needs {exc.name or 'onnx2torch'}: "
                              f"{INSTALL_HINT}") from None
    return onnx, onnx2torch


def _load(path: str | Path) -> Any:
    onnx, _ = _converter()
    path = Path(path)
    if not path.is_file():
        raise OnnxImportError(f"{path}: no such ONNX file")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's decode errors have no common base
        raise OnnxImportError(f"{path} is not a readable ONNX model ({type(exc).__name__}: "
                              f"{exc})") from None


def input_output_channels(path: str | Path) -> tuple[int | None, int | None]:
    """Dimension 1 of the ONNX file's first input and first output (channels, classes);
    ``None`` where the file leaves it symbolic."""
    graph = _load(path).graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]

    def channels(values: Any) -> int | None:
        dims = values[0].type.tensor_type.shape.dim if values else []
        return dims[1].dim_value or None if len(dims) > 1 else None
    return channels(inputs), channels(graph.output)


def unsupported_operators(model: Any) -> dict[str, list[str]]:
    """Operators of an ONNX ``ModelProto`` onnx2torch cannot convert: ``{op_type: [node names]}``.

    Examples:
        >>> unsupported_operators(onnx_model)          # doctest: +SKIP
        {'NonMaxSuppression': ['nms_0']}
    """
    _, onnx2torch = _converter()
    from onnx2torch.node_converters import get_converter
    opsets = {entry.domain or "": entry.version for entry in model.opset_import}
    missing_torchvision = importlib.util.find_spec("torchvision") is None
    found: dict[str, list[str]] = {}
    for node in model.graph.node:
        domain = node.domain or ""
        try:
            get_converter(node.op_type, opsets.get(domain, opsets.get("", 1)), domain)
            supported = not (missing_torchvision and node.op_type in TORCHVISION_OPERATORS)
        except NotImplementedError:
            supported = False
        if not supported:
            found.setdefault(node.op_type, []).append(node.name or node.output[0])
    return found


def _fold_constant_identities(model: Any) -> Any:
    """A copy of ``model`` where ``Identity`` nodes of initializers (what PyTorch's exporter makes
    of equal weights, such as several zero biases) are initializers themselves: onnx2torch reads
    a Conv's weight and bias only from initializers."""
    model = copy.deepcopy(model)
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in initializers:
            tensor = copy.deepcopy(initializers[node.input[0]])
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
            initializers[tensor.name] = tensor
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def from_onnx(path: str | Path) -> Any:
    """The ``torch.nn`` model of an ONNX file (a ``torch.fx.GraphModule`` in eval mode).

    Args:
        path: an ``.onnx`` file (e.g. from ``torch.onnx.export``).

    Returns:
        The model; its ``Conv`` nodes are ``nn.Conv2d`` modules, ready for
        :func:`sparsewino.nn.convert`, pruning and :func:`sparsewino.engine.compile`.

    Raises:
        OnnxImportError: the optional extra is missing (the message says how to install it),
            the file is not an ONNX model, or it has operators onnx2torch cannot convert (all
            listed, with the nodes).

    Examples:
        >>> model = sparsewino.from_onnx("model.onnx")        # doctest: +SKIP
        >>> model, report = sparsewino.nn.convert(model)      # doctest: +SKIP
    """
    model = _load(path)
    missing = unsupported_operators(model)
    if missing:
        listed = "; ".join(f"{op} ({len(nodes)}: {', '.join(nodes[:3])}"
                           f"{', ...' if len(nodes) > 3 else ''})" for op, nodes in missing.items())
        raise OnnxImportError(f"{path}: {sum(map(len, missing.values()))} nodes have no converter "
                              f"in onnx2torch: {listed}. Export the model without them (or "
                              "replace them by supported operators)")
    _, onnx2torch = _converter()
    try:
        module = onnx2torch.convert(_fold_constant_identities(model))
    except (NotImplementedError, KeyError, ValueError) as exc:
        raise OnnxImportError(f"{path}: onnx2torch could not convert it ({type(exc).__name__}: "
                              f"{exc})") from None
    return module.eval()
