"""sparsewino: sparse Winograd convolution for PyTorch.

``sparsewino.from_onnx(path)`` (the optional ``onnx`` extra) is imported on first use, so that
``import sparsewino`` stays light.
"""
from __future__ import annotations

from typing import Any

__all__ = ["from_onnx"]


def __getattr__(name: str) -> Any:
    if name == "from_onnx":
        from .onnx_import import from_onnx
        return from_onnx
    raise AttributeError(f"module 'sparsewino' has no attribute {name!r}")
