"""The Examples in the pruning docstrings run and say what they show."""
import doctest
import importlib

import pytest
import torch
from torch import nn

import sparsewino

MODULES = ["mask", "selection", "criteria", "layers", "model", "schedule", "stats", "serialization",
           "callbacks", "methods.magnitude", "methods.spatial_winograd", "methods.winograd_domain",
           "methods.structured", "methods.winograd_relu", "methods.native", "methods.particle_filter"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    torch.manual_seed(0)
    module = importlib.import_module(f"sparsewino.prune.{name}")
    result = doctest.testmod(module, extraglobs={"nn": nn, "torch": torch, "sparsewino": sparsewino},
                             optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
