"""The mathematics of Winograd convolution: algorithms, transforms, tiling, errors, counts.

This subpackage depends on nothing else in sparsewino.
"""
from .algorithm import WinogradAlgorithm, algorithm, conv_multiplications, importance_factor_matrix, parse_points
from .error import DEFAULT_ERROR_BUDGET, choose_tile, measure_error
from .points import CURATED_POINTS, LAVIN_POINTS, default_points, naive_points

__all__ = [
    "WinogradAlgorithm", "algorithm", "conv_multiplications", "importance_factor_matrix", "parse_points",
    "measure_error", "choose_tile", "DEFAULT_ERROR_BUDGET",
    "CURATED_POINTS", "LAVIN_POINTS", "default_points", "naive_points",
]
