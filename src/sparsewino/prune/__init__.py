"""Pruning for Winograd convolution: one mask mechanism, many methods, sparsity in both domains.

Methods (each ``f(module, amount, ...)`` returns the module; ``prune_model`` runs any of
them over a model with per-layer overrides, exclusions and global amounts; every method is
listed in the registry :data:`METHODS`):

* :func:`magnitude` — spatial unstructured magnitude pruning (the baseline);
* :func:`spatial_winograd` — spatial-Winograd step 1 (structured spatial pruning aimed at
  Winograd zeros);
* :func:`winograd_domain` — step 2 (Winograd-domain pruning with the importance factor
  matrix and gradient scaling; ``ifm=False``: plain);
* :class:`NativeWinogradPruning` — Li et al.'s L1 + hard threshold, a training callback;
* :func:`winograd_relu` / :func:`winograd_relu_prune` — Liu et al.'s Winograd-ReLU;
* :func:`structured` — Anwar et al.'s feature-map / kernel / strided pruning, with L1/L2 or
  particle filtering;
* :func:`column` — Qin et al.'s column-wise (low-rank oriented) pruning of whole Winograd
  positions of low-rank (and Winograd-domain) layers.

See docs/pruning.md.
"""
from .callbacks import PruningCallback, TrainingCallback
from .criteria import GroupMax, IFMMagnitude, Importance, Magnitude, OutputNormMagnitude
from .fold import FoldResult, fold_pruned_feature_maps
from .layers import SelectionError
from .mask import (
                   Mask,
                   apply_mask,
                   effective_weight,
                   finalize,
                   get_grad_scale,
                   get_mask,
                   masked_tensors,
                   pruning_info,
                   pruning_records,
                   refresh,
                   restore_pruning_records,
                   set_grad_scale,
                   temporary_mask,
)
from .methods import (
                   DEFAULT_GRAD_POWER,
                   GRANULARITIES,
                   METHODS,
                   RECOMMENDED_LR,
                   ColumnImportance,
                   MethodSpec,
                   NativeWinogradPruning,
                   ParticleFilter,
                   PruneContext,
                   WinogradReluReport,
                   batch_accuracy,
                   column,
                   magnitude,
                   method_options,
                   register_method,
                   spatial_winograd,
                   structured,
                   winograd_domain,
                   winograd_relu,
                   winograd_relu_prune,
)
from .methods.winograd_domain import ifm_grad_scale
from .model import prunable_layers, prune_model, resolve_method, unwrap_model
from .schedule import CubicSchedule, Schedule, StepSchedule
from .selection import amount_to_count
from .serialization import load_masks, load_pruned_state_dict, masks_state, save_masks
from .stats import LayerSparsity, SparsityReport, plot_position_sparsity, stats

__all__ = [
    # mechanism
    "Mask", "apply_mask", "get_mask", "get_grad_scale", "set_grad_scale", "effective_weight",
    "masked_tensors", "pruning_info", "pruning_records", "restore_pruning_records",
    "temporary_mask", "refresh", "finalize", "SelectionError",
    "save_masks", "load_masks", "masks_state", "load_pruned_state_dict", "amount_to_count",
    # criteria
    "Importance", "Magnitude", "IFMMagnitude", "OutputNormMagnitude", "GroupMax",
    # methods
    "magnitude", "spatial_winograd", "winograd_domain", "ifm_grad_scale", "DEFAULT_GRAD_POWER",
    "RECOMMENDED_LR", "NativeWinogradPruning", "winograd_relu", "winograd_relu_prune",
    "WinogradReluReport", "structured", "fold_pruned_feature_maps", "FoldResult", "GRANULARITIES",
    "ParticleFilter", "batch_accuracy", "column", "ColumnImportance",
    "METHODS", "MethodSpec", "register_method", "resolve_method", "method_options", "PruneContext",
    # model level, schedules, callbacks
    "prune_model", "prunable_layers", "unwrap_model", "Schedule", "StepSchedule",
    "CubicSchedule", "TrainingCallback", "PruningCallback",
    # reporting
    "stats", "SparsityReport", "LayerSparsity", "plot_position_sparsity",
]
