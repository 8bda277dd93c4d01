"""Structured pruning (Anwar et al.): unit shapes, L1 vs L2, and the particle filter."""
import copy

import pytest
import torch
from torch import nn

from sparsewino import prune as sp
from sparsewino.nn import WinogradConv2d
from sparsewino.prune.methods.structured import unit_index


def test_feature_maps_are_whole_filters_and_biases():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3)
    norms = conv.weight.detach().abs().flatten(1).mean(1)
    sp.structured(conv, 0.25, "feature_map")
    dead = conv.weight.detach().flatten(1).abs().sum(1) == 0
    assert dead.sum() == 2 and torch.equal(dead, conv.bias_mask == 0)
    assert set(torch.nonzero(dead).flatten().tolist()) == set(norms.argsort()[:2].tolist())
    assert torch.all(conv.bias[dead] == 0)
    out = conv(torch.randn(1, 3, 5, 5))
    assert torch.all(out[:, dead] == 0)                     # the maps are exactly zero


def test_kernels_and_strided_patterns_have_their_shape():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 5, 3)
    sp.structured(conv, 7, "kernel")                        # a count of kernels
    kernel_dead = conv.weight_mask.flatten(2).sum(2) == 0
    assert kernel_dead.sum() == 7
    assert torch.all(conv.weight_mask.flatten(2).sum(2)[~kernel_dead] == 9)
    strided = nn.Conv2d(4, 5, 3)
    sp.structured(strided, 0.4, "strided", stride=3)
    mask = strided.weight_mask.flatten(2)                   # (K, C, 9)
    taps = torch.arange(9) % 3
    for k in range(5):
        for offset in range(3):
            values = mask[k][:, taps == offset]
            assert values.min() == values.max()             # one pattern across the filter's kernels
    assert int((mask == 0).sum()) == round(0.4 * 15) * 3 * 4
    index, units = unit_index((5, 4, 3, 3), "strided", 3)
    assert units == 15 and index[2, 1, 0, 1].item() == 2 * 3 + 1


def test_l1_and_l2_rank_units_differently():
    conv = nn.Conv2d(1, 2, 3, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 3.0                       # L1 mean 1/3, RMS 1
        conv.weight[1, 0] = 0.5                             # L1 mean 1/2, RMS 1/2
    a, b = [nn.Conv2d(1, 2, 3, bias=False) for _ in range(2)]
    a.load_state_dict(conv.state_dict())
    b.load_state_dict(conv.state_dict())
    sp.structured(a, 1, "kernel", importance="l1")
    sp.structured(b, 1, "kernel", importance="l2")
    assert a.weight_mask[0].sum() == 0 and a.weight_mask[1].sum() == 9
    assert b.weight_mask[1].sum() == 0 and b.weight_mask[0].sum() == 9


def test_structured_on_winograd_domain_weights_and_errors():
    layer = WinogradConv2d(3, 4, 3, tile=2, domain="winograd")
    sp.structured(layer, 0.5, "kernel")
    assert int((layer.weight.flatten(2).abs().sum(2) == 0).sum()) == 6
    with pytest.raises(ValueError, match="granularity"):
        sp.structured(nn.Conv2d(1, 1, 3), 0.5, "channel")
    with pytest.raises(ValueError, match="stride"):
        sp.structured(nn.Conv2d(1, 1, 3), 0.5, "strided", stride=10)
    with pytest.raises(TypeError, match="evaluate"):
        sp.structured(nn.Conv2d(1, 2, 3), 1, "feature_map", importance="particle_filter")


def _useless_channel_task():
    """Channels 2 and 4 are loud but ignored by the classifier; the labels come from the rest."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(6, 3))
    with torch.no_grad():
        net[0].weight[[2, 4]] *= 20.0                       # L1 would never pick these ...
        net[4].weight[:, [2, 4]] = 0.0                      # ... but they do not matter
        net[4].weight[:, [0, 1, 3, 5]] *= 10.0
    x = torch.randn(96, 2, 6, 6)
    with torch.no_grad():
        y = net(x).argmax(1)
    return net, x, y


def test_particle_filter_finds_the_useless_channels():
    net, x, y = _useless_channel_task()
    evaluate = sp.batch_accuracy(x, y)
    assert evaluate(net) == 1.0
    reference = nn.Conv2d(2, 6, 3, padding=1)
    reference.load_state_dict(net[0].state_dict())
    sp.structured(reference, 2, "feature_map", importance="l1")
    assert {2, 4}.isdisjoint(torch.nonzero(reference.bias_mask == 0).flatten().tolist())
    l1_net = copy.deepcopy(net)
    l1_net[0] = reference
    assert evaluate(l1_net) < 0.9                          # the cheap criterion gets it wrong

    search = sp.ParticleFilter(evaluate, particles=6, iterations=4, seed=0)
    sp.prune_model(net, "structured", 2, granularity="feature_map", importance=search)
    pruned = torch.nonzero(net[0].bias_mask == 0).flatten().tolist()
    assert sorted(pruned) == [2, 4]
    assert evaluate(net) == 1.0
    assert search.history == sorted(search.history) and search.history[-1] == 1.0


def test_particle_filter_is_reproducible_by_seed():
    results = []
    for seed in (3, 3, 4):
        net, x, y = _useless_channel_task()
        sp.structured(net[0], 3, "kernel", importance="particle_filter",
                      evaluate=sp.batch_accuracy([(x[:48], y[:48]), (x[48:], y[48:])]), model=net,
                      seed=seed)
        results.append(net[0].weight_mask.clone())
    assert torch.equal(results[0], results[1])
    with pytest.raises(ValueError, match="one layer at a time"):
        net, x, y = _useless_channel_task()
        sp.prune_model(net, "structured", 0.5, scope="global", importance="particle_filter",
                       evaluate=sp.batch_accuracy(x, y))
