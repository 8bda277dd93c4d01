"""Inference engine: compile Winograd models to a fused sparse CPU kernel; count multiplications."""
from .compile import CompileReport, LayerKernel, compile, compile_report
from .count import LayerCount, MultiplicationCount, count
from .kernels import available_backends, backend, use_backend
from .modules import SparseWinogradConv2d
from .packing import choose_format

__all__ = ["compile", "count", "LayerCount", "MultiplicationCount", "CompileReport", "LayerKernel", "compile_report", "SparseWinogradConv2d",
           "choose_format", "backend", "available_backends", "use_backend"]
