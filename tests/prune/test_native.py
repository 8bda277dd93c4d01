"""Native Winograd pruning (Li et al.): a final sparsity it stops at, and optional regrowth."""
import pytest
import torch
from torch import nn

from sparsewino import prune as sp
from sparsewino.nn import WinogradConv2d


def _net():
    torch.manual_seed(0)
    return nn.Sequential(WinogradConv2d(3, 6, 3, padding=1, tile=2, domain="winograd"), nn.ReLU(),
                         WinogradConv2d(6, 5, 3, padding=1, tile=4, domain="winograd"),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2))


def _sparsity(layer):
    return float((layer.weight_mask == 0).double().mean())


def test_final_sparsity_stops_the_l1_push_exactly(train):
    pushed, capped = _net(), _net()
    free = sp.NativeWinogradPruning(pushed, sparsity=0.3, l1=0.05)
    stop = sp.NativeWinogradPruning(capped, sparsity=0.3, l1=0.05, final_sparsity=0.5)
    train(pushed, steps=60, callbacks=[free], lr=0.01)
    train(capped, steps=60, callbacks=[stop], lr=0.01)
    assert all(_sparsity(pushed[i]) > 0.6 for i in (0, 2))          # L1 keeps pushing
    for i in (0, 2):
        layer = capped[i]
        assert int((layer.weight_mask == 0).sum()) == round(0.5 * layer.weight_mask.numel())
        assert torch.all(layer.weight[layer.weight_mask == 0] == 0)
    assert stop.regularization(capped) is None                      # every layer at its target
    assert stop.target == 0.5 and "-> 0.50" in stop.describe()
    with pytest.raises(ValueError, match="above final_sparsity"):
        sp.NativeWinogradPruning(sparsity=0.6, final_sparsity=0.5)


def test_regrowth_brings_pruned_weights_back_and_keeps_them_zero_while_pruned(train):
    model = _net()
    callback = sp.NativeWinogradPruning(model, sparsity=0.5, l1=0.0, regrow=True)
    callback.on_train_begin(model)
    first = [model[i].weight_mask.clone() for i in (0, 2)]
    for layer in (model[0], model[2]):                               # pruned weights are zeroed
        assert torch.all(layer.weight_orig[layer.weight_mask == 0] == 0)
    train(model, steps=30, callbacks=[], lr=0.01)                   # threshold not applied here
    for step in range(5):
        x = torch.randn(4, 3, 9, 9)
        loss = (model(x) - 1.0).pow(2).mean()
        loss.backward()
        grads = [model[i].weight_orig.grad for i in (0, 2)]
        assert all(float(g[m == 0].abs().sum()) > 0 for g, m in zip(grads, first))  # straight through
        with torch.no_grad():
            for i in (0, 2):
                model[i].weight_orig -= 2e-4 * model[i].weight_orig.grad
                model[i].weight_orig.grad = None
        callback.after_step(model, step)
        for i in (0, 2):
            assert torch.all(model[i].weight[model[i].weight_mask == 0] == 0)
    back = sum(int(((m == 0) & (model[i].weight_mask == 1)).sum()) for i, m in zip((0, 2), first))
    assert back > 0                                                  # some came back
    callback.on_train_end(model)                                     # hooks gone: masks hold again
    model(torch.randn(4, 3, 9, 9)).pow(2).mean().backward()
    assert float(model[2].weight_orig.grad[model[2].weight_mask == 0].abs().sum()) == 0


def test_masks_only_grow_without_regrowth(train):
    model = _net()
    callback = sp.NativeWinogradPruning(model, sparsity=0.4, l1=0.01)
    callback.on_train_begin(model)
    first = [model[i].weight_mask.clone() for i in (0, 2)]
    train(model, steps=20, callbacks=[callback], lr=0.01)
    for i, mask in zip((0, 2), first):
        assert torch.all(model[i].weight_mask[mask == 0] == 0)
