"""Torch modules: Winograd convolution layers and model conversion."""
from .conv import DOMAINS, WinogradConv2d, WinogradConv3d
from .convert import ConversionReport, convert, revert
from .functional import winograd_conv

__all__ = ["WinogradConv2d", "WinogradConv3d", "DOMAINS", "convert", "revert",
           "ConversionReport", "winograd_conv"]
