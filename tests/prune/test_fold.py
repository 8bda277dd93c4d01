"""Folding pruned feature maps: the BatchNorm shift goes into the next layer, whose kernels go."""
import copy
import logging

import pytest
import torch
from torch import nn

from sparsewino import engine
from sparsewino import prune as sp
from sparsewino.nn import convert


def _net(consumer_bias=False, padding=0):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(6, 4, 3, padding=padding, bias=consumer_bias),
                        nn.BatchNorm2d(4), nn.ReLU())
    with torch.no_grad():                     # trained-looking BatchNorms with positive shifts
        for bn in (net[1], net[5]):
            bn.running_mean.uniform_(-0.5, -0.1)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(0.1, 0.5)
    return net.eval()


@pytest.mark.parametrize("consumer_bias", [False, True])
def test_pruned_maps_fold_into_the_next_layer_with_the_same_outputs(consumer_bias):
    net = _net(consumer_bias)
    unfolded = copy.deepcopy(net)
    sp.prune_model(unfolded, "structured", 0.5, granularity="feature_map", include=["0"], fold=False)
    x = torch.randn(2, 3, 12, 12)
    dead = (unfolded[0].weight.flatten(1).abs().sum(1) == 0)
    assert int(dead.sum()) == 3
    with torch.no_grad():                     # without folding the dead maps still feed a constant
        shift = unfolded[2](unfolded[1](unfolded[0](x)))[:, dead]
    assert float(shift.abs().min()) > 0.05
    sp.prune_model(net, "structured", 0.5, granularity="feature_map", include=["0"])
    assert torch.all(net[1].weight[dead] == 0) and torch.all(net[1].bias[dead] == 0)
    assert torch.all(net[4].weight[:, dead] == 0)             # kernels reading them are masked
    assert torch.all(net[4].weight_mask[:, ~dead] == 1)
    with torch.no_grad():
        torch.testing.assert_close(net(x), unfolded(x), rtol=1e-5, atol=1e-5)   # padding 0: exact


def test_fold_is_exact_away_from_padding_and_does_not_fold_twice():
    net = _net(padding=1)
    unfolded = copy.deepcopy(net)
    x = torch.randn(2, 3, 16, 16)
    for amount in (0.34, 0.67):               # a second target folds only the newly pruned maps
        sp.prune_model(unfolded, "structured", amount, granularity="feature_map", include=["0"],
                       fold=False)
        sp.prune_model(net, "structured", amount, granularity="feature_map", include=["0"])
        with torch.no_grad():
            folded, reference = net(x), unfolded(x)
        torch.testing.assert_close(folded[..., 1:-1, 1:-1], reference[..., 1:-1, 1:-1],
                                   rtol=1e-5, atol=1e-5)
    assert int((net[1].weight_mask == 0).sum()) == 4


def test_engine_count_credits_the_folded_kernels_and_compile_agrees():
    net = _net(padding=1)
    before = engine.count(net, (1, 3, 16, 16))
    sp.prune_model(net, "structured", 0.5, granularity="feature_map", include=["0"], fold=False)
    unfolded = engine.count(net, (1, 3, 16, 16))
    net = _net(padding=1)
    sp.prune_model(net, "structured", 0.5, granularity="feature_map", include=["0"])
    folded = engine.count(net, (1, 3, 16, 16))
    consumer = [layer for layer in folded if layer.name == "4"][0]
    assert unfolded["4"].sparse == before["4"].sparse          # without folding: no credit
    assert consumer.sparse == before["4"].sparse // 2          # half its kernels read dead maps
    assert folded.total["sparse"] < unfolded.total["sparse"]
    convert(net, tile=2, domain="winograd")
    fast = engine.compile(net)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), rtol=1e-4, atol=1e-4)
    fresh = _net(padding=1)
    convert(fresh, tile=2, domain="winograd")
    sp.load_pruned_state_dict(fresh, net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), net(x))


def test_a_map_with_no_convolution_after_it_is_left_with_a_reason(caplog):
    net = _net()[:4]                                           # ends at the max-pool
    with caplog.at_level(logging.WARNING, logger="sparsewino"):
        result = sp.fold_pruned_feature_maps(net, sp.structured(net[0], 2, "feature_map"))
    assert "not a convolution" in result.reason and "constant stays" in caplog.text
    assert sp.get_mask(net[1], "weight") is None               # the BatchNorm is untouched
    alone = nn.Conv2d(1, 2, 3)
    assert "nn.Sequential" in sp.fold_pruned_feature_maps(alone, alone).reason
