"""Pruning methods; each decides which entries to prune and leaves masking to the mask mechanism."""
from .base import MethodSpec
from .magnitude import MAGNITUDE, magnitude
from .particle_filter import ParticleFilter, batch_accuracy
from .spatial_winograd import SPATIAL_WINOGRAD, spatial_winograd
from .structured import GRANULARITIES, STRUCTURED, structured
from .winograd_domain import DEFAULT_GRAD_POWER, RECOMMENDED_LR, WINOGRAD_DOMAIN, winograd_domain
from .winograd_relu import WINOGRAD_RELU, WinogradReluReport, winograd_relu, winograd_relu_prune

#: Methods usable by name in prune_model() and PruningCallback.
METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MAGNITUDE, SPATIAL_WINOGRAD, WINOGRAD_DOMAIN, WINOGRAD_RELU, STRUCTURED)}

__all__ = ["METHODS", "MethodSpec", "magnitude", "spatial_winograd", "winograd_domain",
           "winograd_relu", "winograd_relu_prune", "WinogradReluReport", "structured",
           "GRANULARITIES", "ParticleFilter", "batch_accuracy", "DEFAULT_GRAD_POWER",
           "RECOMMENDED_LR"]
