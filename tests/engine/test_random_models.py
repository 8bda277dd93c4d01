"""Random whole CNNs (kernels 1-7, strides 1-2, BatchNorm, pooling, Linear heads, tiles 2/4/6),
converted to Winograd layers and compiled, against the float64 PyTorch model: on every backend
and lane count, so the 16-tile transforms run inside whole programs (DWM pieces, fused
pooling, many block shapes), not only in single-layer tests."""
from __future__ import annotations

import copy
import random

import pytest
import torch
from torch import nn

from sparsewino import engine
from sparsewino.nn import convert

from .conftest import LANE_CASES, needs_kernel


def random_cnn(rng: random.Random) -> nn.Sequential:
    """A random small CNN with non-trivial BatchNorm statistics, in eval mode."""
    layers: list[nn.Module] = []
    channels = rng.choice([1, 3, 5])
    for _ in range(rng.randint(2, 5)):
        kernel = rng.choice([1, 3, 3, 5, 7])
        stride = rng.choice([1, 1, 2]) if kernel > 1 else 1
        out = rng.randint(3, 40)
        layers.append(nn.Conv2d(channels, out, kernel, stride=stride, padding=kernel // 2,
                                bias=rng.random() < 0.5))
        if rng.random() < 0.6:
            norm = nn.BatchNorm2d(out)
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
            layers.append(norm)
        layers.append(nn.ReLU())
        if rng.random() < 0.3:
            layers.append(nn.MaxPool2d(2))
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 7)]
    return nn.Sequential(*layers).eval()


@needs_kernel
@pytest.mark.parametrize("backend,lanes", LANE_CASES)
@pytest.mark.parametrize("seed", range(6))
def test_random_cnn_matches_float64(backend, lanes, seed):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model = random_cnn(rng)
    side, batch = rng.randint(9, 40), rng.choice([1, 4, 8])
    x = torch.randn(batch, model[0].in_channels, side, side)
    winograd = copy.deepcopy(model)
    convert(winograd, tile=rng.choice([2, 4, 6]))
    with engine.use_backend(backend):
        fast = engine.compile(winograd.eval(), threads=2, tuning_cache=None)
        for module in fast.modules():
            if hasattr(module, "lanes"):
                module.lanes = lanes
        with torch.no_grad():
            y = fast(x)
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(x.double())
    err = (y.double() - ref).abs().max().item() / ref.abs().max().item()
    assert err < 1e-4, (backend, lanes, seed, err)
