"""Torch modules: Winograd convolution layers, adder layers, the registry of layer kinds, and model conversion."""
from .adder import AdderConv2d, adder_layer_types
from .conv import DECOMPOSE_MODES, DOMAINS, WinogradConv1d, WinogradConv2d, WinogradConv3d
from .convert import ConversionReport, convert, revert
from .functional import winograd_conv
from .kinds import LAYER_KINDS, LayerKind, kind_of, register_layer_kind
from .lowrank import LowRankWinogradConv2d, LowRankWinogradConv3d, RankError, is_low_rank
from .winograd_adder import WinogradAdderConv2d, set_exponent

__all__ = ["WinogradConv1d", "WinogradConv2d", "WinogradConv3d", "DOMAINS", "DECOMPOSE_MODES", "convert",
           "revert", "ConversionReport", "winograd_conv", "LAYER_KINDS", "LayerKind", "register_layer_kind",
           "kind_of",
           "AdderConv2d", "WinogradAdderConv2d", "adder_layer_types", "set_exponent",
           "LowRankWinogradConv3d", "LowRankWinogradConv2d", "RankError", "is_low_rank"]
