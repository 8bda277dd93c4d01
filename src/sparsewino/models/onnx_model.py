"""The ``onnx`` entry of the model registry: a model read from an ONNX file (``args: {path: ...}``),
so recipes (``model: {name: onnx, args: {path: model.onnx}}``), ``sparsewino train --model onnx``
and checkpoints (rebuilt from the same file, then their weights loaded) take ONNX models."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from ..onnx_import import OnnxImportError, from_onnx, input_output_channels
from .registry import register_model

__all__ = ["onnx_model"]


@register_model("onnx", 32, "a model read from an ONNX file with onnx2torch (args: path; the optional "
                "onnx extra); channels and classes must match the file")
def onnx_model(in_channels: int = 3, num_classes: int = 10, path: str | None = None) -> nn.Module:
    """The model of the ONNX file ``path`` (:func:`sparsewino.from_onnx`).

    Args:
        in_channels, num_classes: what the data gives; must equal the file's input channels and
            output size (an ONNX model has them fixed).
        path: the ``.onnx`` file.

    Raises:
        OnnxImportError: no path, an unreadable file, operators without a converter, or
            channels / classes that differ from the file's.
    """
    if not path:
        raise OnnxImportError("model 'onnx' needs args.path, the .onnx file (recipe: "
                              "model: {name: onnx, args: {path: model.onnx}})")
    channels, classes = input_output_channels(Path(path))
    if (channels, classes) != (in_channels, num_classes) and None not in (channels, classes):
        raise OnnxImportError(f"{path} takes {channels} input channels and gives {classes} outputs; "
                              f"the data has {in_channels} channels and {num_classes} classes")
    return from_onnx(path)
