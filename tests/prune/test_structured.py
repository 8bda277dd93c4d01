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


def test_kernels_have_their_shape():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 5, 3)
    sp.structured(conv, 7, "kernel")                        # a count of kernels
    kernel_dead = conv.weight_mask.flatten(2).sum(2) == 0
    assert kernel_dead.sum() == 7
    assert torch.all(conv.weight_mask.flatten(2).sum(2)[~kernel_dead] == 9)


def _im2col_rows(conv):
    """Rows (c, j) of the layer's im2col matrix that every filter still uses: (C, taps) bools."""
    return conv.weight_mask.flatten(2).bool().any(dim=0)


@pytest.mark.parametrize("stride", [2, 3, 4])
def test_strided_pattern_is_shared_by_every_filter_so_im2col_rows_drop(stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, bias=False)
    sp.structured(conv, 0.5, "strided", stride=stride)
    mask = conv.weight_mask.flatten(2)                      # (K, C, 9)
    assert torch.equal(mask, mask[:1].expand_as(mask))      # one pattern for all filters of a map
    rows = _im2col_rows(conv)
    taps = torch.arange(9) % stride
    pruned_maps = [c for c in range(6) if not rows[c].all()]
    assert len(pruned_maps) == 3                            # half the input maps
    for c in pruned_maps:                                   # one tap in `stride` kept, not inverted
        kept = torch.nonzero(rows[c]).flatten()
        assert len(set(taps[kept].tolist())) == 1
        assert int(rows[c].sum()) == int((taps == taps[kept[0]]).sum())
    # the im2col matrix of the pruned layer lost those rows: same output without them
    x = torch.randn(2, 6, 7, 7)
    columns = torch.nn.functional.unfold(x, 3)              # (N, C*9, L)
    keep = rows.flatten()
    reduced = conv.weight.flatten(1)[:, keep] @ columns[:, keep]
    torch.testing.assert_close(reduced.reshape(2, 5, 5, 5), conv(x), rtol=1e-5, atol=1e-5)
    assert int((~keep).sum()) == sum(int((taps != taps[torch.nonzero(rows[c])[0]]).sum())
                                     for c in pruned_maps)


def test_strided_keeps_the_most_important_offset_and_never_empties_a_map():
    conv = nn.Conv2d(2, 3, 3, bias=False)
    with torch.no_grad():
        conv.weight.fill_(0.1)
        conv.weight[:, 0, 0::2] = 1.0            # map 0: rows 0 and 2 hold the large taps ...
        conv.weight[:, 1].view(3, 9)[:, 1::2] = 1.0   # map 1: the odd taps are large
    sp.structured(conv, 1.0, "strided", stride=2)           # every map, as far as it goes
    rows = _im2col_rows(conv)
    taps = torch.arange(9) % 2
    assert torch.equal(rows[1], taps == 1)                  # kept the large (odd) offset
    assert rows.any(dim=1).all()                            # no map lost every tap
    assert torch.all(conv.weight.flatten(2).abs().sum(dim=(0, 2)) > 0)
    # re-pruning keeps the offsets chosen before (masks only grow)
    before = conv.weight_mask.clone()
    sp.structured(conv, 1.0, "strided", stride=2)
    assert torch.equal(conv.weight_mask, before)


def test_strided_units_are_per_input_map_of_each_group():
    index, units = unit_index((5, 4, 3, 3), "strided", 3, torch.tensor([0, 2, 1, 0]))
    assert units == 4 and index[2, 1, 0, 2].item() == 4 and index[2, 1, 0, 1].item() == 1
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, groups=2, bias=False)
    sp.structured(conv, 2, "strided", stride=2)             # two of the four input maps
    mask = conv.weight_mask.flatten(2).reshape(2, 3, 2, 9)  # (group, filter, map in group, taps)
    assert torch.equal(mask, mask[:, :1].expand_as(mask))   # shared within each group
    assert int((mask[:, 0].sum(-1) < 9).sum()) == 2


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
    with pytest.raises(ValueError, match="stride"):
        sp.structured(nn.Conv2d(1, 1, 3), 0.5, "strided", stride=1)
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
