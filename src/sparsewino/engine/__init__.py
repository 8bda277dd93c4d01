"""Inference engine: compile models to sparse CPU kernel programs; count multiplications."""
from .artifact import LoadedModel, load, save
from .compile import CompiledModel, CompileReport, LayerKernel, compile, compile_report
from .count import LayerCount, MultiplicationCount, count
from .decomposed import SparseDecomposedConv2d
from .kernels import available_backends, backend, use_backend
from .modules import SparseLinear, SparsePointwiseConv2d, SparseWinogradConv2d
from .modules3d import SparseWinogradConv3d
from .packing import PackedMatrices, choose_format

__all__ = ["compile", "count", "LayerCount", "MultiplicationCount", "CompileReport", "LayerKernel",
           "compile_report", "CompiledModel", "SparseWinogradConv2d", "SparseWinogradConv3d",
           "SparseDecomposedConv2d", "SparseLinear",
           "SparsePointwiseConv2d", "PackedMatrices", "choose_format", "backend",
           "available_backends", "use_backend", "save", "load", "LoadedModel"]
