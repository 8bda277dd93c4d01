"""Every method on random nets: target reached, masks hold through 50 optimizer steps, finalize == masked."""
import copy
import math

import pytest
import torch
from torch import nn

from sparsewino import prune as sp
from sparsewino.nn import WinogradConv2d, WinogradConv3d
from sparsewino.winograd.transform import filter_transform


def _net2d(domain=None, relu=False):
    torch.manual_seed(0)
    if domain is None:
        convs = [nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 7, 3, padding=1)]
    else:
        convs = [WinogradConv2d(3, 6, 3, padding=1, tile=2, domain=domain),
                 WinogradConv2d(6, 7, 3, padding=1, tile=4, domain=domain)]
    return nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.ReLU() if not relu else nn.Identity(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(7, 2))


def _net3d(domain="spatial"):
    torch.manual_seed(0)
    return nn.Sequential(WinogradConv3d(2, 4, 3, padding=1, tile=2, domain=domain), nn.ReLU(),
                         WinogradConv3d(4, 3, 3, padding=1, tile=2, domain=domain),
                         nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(3, 2))


def _spatial_sparsity(layer):
    return float((layer.weight == 0).double().mean())


def _winograd_sparsity(layer):
    q = layer.weight if layer.domain == "winograd" else filter_transform(layer.weight.double(),
                                                                         layer.algorithms)
    return float((q == 0).double().mean())


def _unit_sparsity(granularity, stride=2):
    def measure(layer):
        w = layer.weight.detach()
        k, c = w.shape[:2]
        flat = w.reshape(k, c, -1)
        if granularity == "feature_map":
            return float((flat.abs().sum(dim=(1, 2)) == 0).double().mean())
        if granularity == "kernel":
            return float((flat.abs().sum(dim=2) == 0).double().mean())
        rows = flat.abs().sum(dim=0) != 0                      # (C, taps): used im2col rows
        return float((rows.sum(dim=1) < flat.shape[2]).double().mean())   # maps strided-pruned
    return measure


def _tolerance_positions(layer):
    return 1.0 / (layer.weight.shape[0] * layer.weight.shape[1])


# name, model builder, prune_model arguments, sparsity measure, tolerance(layer), input shape
CASES = [
    ("magnitude", lambda: _net2d(), dict(method="magnitude", amount=0.6), _spatial_sparsity,
     lambda l: 1 / l.weight.numel(), (4, 3, 9, 9)),
    ("spatial_winograd", lambda: _net2d("spatial"), dict(method="spatial_winograd", amount=0.5),
     _winograd_sparsity, _tolerance_positions, (4, 3, 9, 9)),
    ("spatial_winograd_conv2d", lambda: _net2d(), dict(method="spatial_winograd", amount=0.55, tile=4),
     lambda l: _winograd_sparsity(WinogradConv2d.from_conv(l, tile=4)), _tolerance_positions,
     (4, 3, 9, 9)),
    ("spatial_winograd_3d", lambda: _net3d(), dict(method="spatial_winograd", amount=0.6),
     _winograd_sparsity, _tolerance_positions, (2, 2, 5, 5, 5)),
    ("winograd_domain_ifm", lambda: _net2d("winograd"), dict(method="winograd_domain", amount=0.7),
     _winograd_sparsity, lambda l: 1 / l.weight.numel(), (4, 3, 9, 9)),
    ("winograd_domain_plain", lambda: _net2d("winograd"),
     dict(method="winograd_domain", amount=0.7, ifm=False), _winograd_sparsity,
     lambda l: 1 / l.weight.numel(), (4, 3, 9, 9)),
    ("winograd_domain_3d", lambda: _net3d("winograd"), dict(method="winograd_domain", amount=0.8),
     _winograd_sparsity, lambda l: 1 / l.weight.numel(), (2, 2, 5, 5, 5)),
    ("winograd_relu", lambda: sp.winograd_relu(_net2d(), tile=2)[0],
     dict(method="winograd_relu", amount=0.6), _winograd_sparsity, lambda l: 1 / l.weight.numel(),
     (4, 3, 9, 9)),
    ("structured_feature_map", lambda: _net2d(),
     dict(method="structured", amount=0.5, granularity="feature_map"), _unit_sparsity("feature_map"),
     lambda l: 1 / l.weight.shape[0], (4, 3, 9, 9)),
    ("structured_kernel", lambda: _net2d("winograd"),
     dict(method="structured", amount=0.4, granularity="kernel", importance="l2"),
     _unit_sparsity("kernel"), _tolerance_positions, (4, 3, 9, 9)),
    ("structured_strided", lambda: _net2d(),
     dict(method="structured", amount=0.5, granularity="strided", stride=2), _unit_sparsity("strided"),
     lambda l: 1 / l.weight.shape[1], (4, 3, 9, 9)),
]


def _pruned_layers(model):
    return [m for _, m, t in sp.masked_tensors(model) if t == "weight"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_target_reached_masks_hold_and_finalize_matches(case, optimizer, train, check_masks_hold,
                                                        mask_snapshot):
    _, build, arguments, measure, tolerance, shape = case
    model = build()
    arguments = dict(arguments)
    method, amount = arguments.pop("method"), arguments.pop("amount")
    sp.prune_model(model, method, amount, **arguments)
    layers = _pruned_layers(model)
    assert layers, "nothing was pruned"
    for layer in layers:
        assert abs(measure(layer) - amount) <= tolerance(layer) + 1e-12, type(layer).__name__
        assert sp.pruning_info(layer)["method"] == method
    before = mask_snapshot(model)
    train(model, optimizer, steps=50, shape=shape)
    check_masks_hold(model, before)
    for layer in layers:
        assert abs(measure(layer) - amount) <= tolerance(layer) + 1e-12    # still there
    x = torch.randn(*shape)
    model.eval()
    masked = model(x)
    final = sp.finalize(copy.deepcopy(model))
    assert not list(sp.masked_tensors(final))
    torch.testing.assert_close(final(x), masked, rtol=0, atol=0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_native_callback_masks_hold_and_finalize_matches(optimizer, train, check_masks_hold,
                                                         mask_snapshot):
    model = _net2d("winograd")
    callback = sp.NativeWinogradPruning(model, sparsity=0.5, l1=1e-3)
    callback.on_train_begin(model)
    for layer in (model[0], model[2]):
        assert _winograd_sparsity(layer) == pytest.approx(0.5, abs=1 / layer.weight.numel())
    history = []
    for chunk in range(5):                                  # 5 x 10 steps, masks only grow
        before = mask_snapshot(model)
        train(model, optimizer, steps=10, callbacks=[callback], seed=chunk)
        for key, mask in mask_snapshot(model).items():
            assert torch.all(mask <= before[key])
        history.append(_winograd_sparsity(model[2]))
    assert history == sorted(history) and history[-1] >= 0.5
    before = mask_snapshot(model)
    train(model, optimizer, steps=10)                      # without the callback: masks hold
    check_masks_hold(model, before)
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(sp.finalize(copy.deepcopy(model))(x), model(x), rtol=0, atol=0)


def test_every_layer_function_returns_its_module():
    conv = nn.Conv2d(3, 4, 3)
    wlayer = WinogradConv2d(3, 4, 3, tile=2, domain="winograd")
    relu_layer = WinogradConv2d(3, 4, 3, tile=2, domain="winograd", winograd_relu=True)
    assert sp.magnitude(conv, 0.3) is conv
    assert sp.spatial_winograd(nn.Conv2d(3, 4, 3), 0.3).weight_mask is not None
    assert sp.winograd_domain(wlayer, 0.3) is wlayer
    assert sp.winograd_relu_prune(relu_layer, 0.5) is relu_layer
    assert sp.structured(conv, 0.5, "kernel") is conv
    net = _net2d()
    assert sp.prune_model(net, "magnitude", 0.2) is net
    assert math.isclose(sp.pruning_info(relu_layer)["sparsity"], 0.5)


def test_magnitude_in_blocks_prunes_whole_blocks_of_output_channels():
    """magnitude(block=8) on a spatial conv: whole blocks of 8 output channels at one (input
    channel, tap), the lowest mean magnitudes first; the amount counts entries."""
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 16, 3)
    scores = conv.weight.detach().abs().double()
    sp.magnitude(conv, 0.5, block=8)
    keep = conv.weight_mask.bool()
    for start in (0, 8):
        part = keep[start:start + 8]
        assert torch.equal(part, part[:1].expand_as(part))
    means = torch.stack([scores[:8].mean(0), scores[8:].mean(0)])
    kept = torch.stack([keep[0], keep[8]])
    assert means[~kept].max() <= means[kept].min()
    assert int((~keep).sum()) == conv.weight.numel() // 2
