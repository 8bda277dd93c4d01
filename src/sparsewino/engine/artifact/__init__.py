"""Engine artifacts (``.swe``): a compiled model saved as data (:func:`save`) and run without its
Python class (:func:`load`, or the C API of ``sparsewino.h``)."""
from .container import FORMAT_VERSION, MAGIC, is_artifact
from .export import save
from .runtime import LoadedModel, load

__all__ = ["save", "load", "LoadedModel", "is_artifact", "FORMAT_VERSION", "MAGIC"]
