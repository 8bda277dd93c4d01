"""The Examples in every module's docstrings run and show what they say (illustrative ones are
marked ``# doctest: +SKIP``)."""
import doctest
import importlib
import logging
import pkgutil

import pytest
import torch
from torch import nn

import sparsewino

# Every Python module (the compiled kernel library is a ctypes library, not a module).
MODULES = sorted(m.name for m in pkgutil.walk_packages(sparsewino.__path__, "sparsewino.")
                 if not m.name.endswith("._sw_kernels"))


def test_every_part_of_the_package_is_covered():
    parts = {name.split(".")[1] for name in MODULES}
    assert {"winograd", "nn", "prune", "data", "models", "train", "recipes", "report", "cli",
            "engine"} <= parts
    assert "sparsewino.prune.mask" in MODULES and "sparsewino.registry" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    torch.manual_seed(0)
    module = importlib.import_module(name)
    logging.disable(logging.CRITICAL)           # log lines are not part of what examples show
    try:
        result = doctest.testmod(module, extraglobs={"nn": nn, "torch": torch,
                                                     "sparsewino": sparsewino},
                                 optionflags=doctest.ELLIPSIS)
    finally:
        logging.disable(logging.NOTSET)
    assert result.failed == 0
