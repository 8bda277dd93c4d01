"""The mathematics of Winograd convolution: algorithms, transforms, tiling, errors, counts.

This subpackage depends on nothing else in sparsewino.
"""
from .algorithm import WinogradAlgorithm, algorithm, conv_multiplications, importance_factor_matrix, parse_points
from .error import DEFAULT_ERROR_BUDGET, ERROR_LIMIT, WinogradAccuracyWarning, choose_tile, measure_error, tile_error
from .points import CURATED_POINTS, LAVIN_POINTS, POINT_SETS, default_points, naive_points, named_points

__all__ = [
    "WinogradAlgorithm", "algorithm", "conv_multiplications", "importance_factor_matrix", "parse_points",
    "measure_error", "choose_tile", "tile_error", "DEFAULT_ERROR_BUDGET", "ERROR_LIMIT",
    "WinogradAccuracyWarning",
    "CURATED_POINTS", "LAVIN_POINTS", "POINT_SETS", "default_points", "naive_points", "named_points",
]
