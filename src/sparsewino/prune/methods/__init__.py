"""Pruning methods; each decides which entries to prune and leaves masking to the mask mechanism.

Importing a method's module registers it in :data:`METHODS` (one line per method below).
"""
from .base import METHODS, MethodSpec, PruneContext, method_options, register_method
from .column import COLUMN, ColumnImportance, column
from .magnitude import MAGNITUDE, magnitude
from .native import NATIVE, NativeWinogradPruning
from .particle_filter import ParticleFilter, batch_accuracy
from .spatial_winograd import SPATIAL_WINOGRAD, spatial_winograd
from .structured import GRANULARITIES, STRUCTURED, structured
from .winograd_domain import DEFAULT_GRAD_POWER, RECOMMENDED_LR, WINOGRAD_DOMAIN, winograd_domain
from .winograd_relu import WINOGRAD_RELU, WinogradReluReport, winograd_relu, winograd_relu_prune

__all__ = ["METHODS", "MethodSpec", "PruneContext", "method_options", "register_method",
           "magnitude", "spatial_winograd", "winograd_domain", "winograd_relu",
           "winograd_relu_prune", "WinogradReluReport", "structured", "GRANULARITIES",
           "ParticleFilter", "batch_accuracy", "DEFAULT_GRAD_POWER", "RECOMMENDED_LR",
           "NativeWinogradPruning", "MAGNITUDE", "NATIVE", "SPATIAL_WINOGRAD", "STRUCTURED",
           "WINOGRAD_DOMAIN", "WINOGRAD_RELU", "column", "COLUMN", "ColumnImportance"]
