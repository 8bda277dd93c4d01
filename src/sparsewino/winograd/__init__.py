"""The mathematics of Winograd convolution: algorithms, transforms, tiling, errors, counts.

This subpackage depends on nothing else in sparsewino.
"""
from .algorithm import WinogradAlgorithm, algorithm, conv_multiplications, importance_factor_matrix, parse_points
from .decompose import AxisSplit, Decomposition, decompose
from .error import (
    DECOMPOSE_MODES,
    DEFAULT_ERROR_BUDGET,
    ERROR_LIMIT,
    WinogradAccuracyWarning,
    algorithm_error,
    choose_decomposition,
    choose_tile,
    decomposed_error,
    measure_error,
    multiplications_per_output,
    tile_error,
)
from .points import CURATED_POINTS, LAVIN_POINTS, POINT_SETS, default_points, naive_points, named_points

__all__ = [
    "WinogradAlgorithm", "algorithm", "conv_multiplications", "importance_factor_matrix", "parse_points",
    "measure_error", "choose_tile", "tile_error", "DEFAULT_ERROR_BUDGET", "ERROR_LIMIT",
    "WinogradAccuracyWarning", "decompose", "Decomposition", "AxisSplit", "DECOMPOSE_MODES",
    "choose_decomposition", "decomposed_error", "algorithm_error", "multiplications_per_output",
    "CURATED_POINTS", "LAVIN_POINTS", "POINT_SETS", "default_points", "naive_points", "named_points",
]
