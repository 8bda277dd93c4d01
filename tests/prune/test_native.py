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


def test_gradual_schedule_sets_each_threshold_to_the_scheduled_fraction(train):
    """Li et al.'s gradual pruning: every threshold prunes exactly the schedule's fraction of each
    layer's Q, rising to the final one, where the L1 term stops."""
    model = _net()
    schedule = sp.CubicSchedule(0.6, begin=0, end=20, initial=0.1, every=5)
    callback = sp.NativeWinogradPruning(model, l1=1e-3, schedule=schedule)
    assert callback.target == 0.6 and callback.describe() == "native gradual -> 0.60"
    callback.on_train_begin(model)
    for i in (0, 2):
        assert int((model[i].weight_mask == 0).sum()) == round(0.1 * model[i].weight_mask.numel())
    seen = []
    for step in range(25):
        model(torch.randn(4, 3, 9, 9)).pow(2).mean().backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 1e-3 * p.grad
                p.grad = None
        callback.after_step(model, step)
        wanted = schedule.amount_at(step + 1)
        for i in (0, 2):
            mask = model[i].weight_mask
            assert int((mask == 0).sum()) == round(wanted * mask.numel()), (step, i)
            assert torch.all(model[i].weight[mask == 0] == 0)
        seen.append(wanted)
    assert seen == sorted(seen) and len(set(seen)) >= 4 and seen[-1] == 0.6
    assert callback.regularization(model) is None                  # at the target: no more L1
    with pytest.raises(ValueError, match="exactly one of threshold"):
        sp.NativeWinogradPruning(sparsity=0.3, schedule=schedule)


def test_gradual_native_in_a_recipe_reaches_its_target(tmp_path):
    from sparsewino.recipes import load_model, load_recipe, run_recipe
    from sparsewino.train import ConfigError
    stage = ("stages=[{stage: train, name: baseline, epochs: 0.2}, {stage: convert, name: w, domain: "
             "winograd}, {stage: prune, name: native, method: native, l1: 1.0e-5, regrow: true, "
             "exclude: [features.0], gradual: {final: 0.6, initial: 0.2, end: 0.5, every_steps: 2}, "
             "finetune: {epochs: 0.5}}, {stage: evaluate, name: final}]")
    overrides = ["model.args={widths: [4, 4, M, 8]}", stage]
    recipe = load_recipe("fashion_mnist_native", overrides, smoke=True)
    torch.manual_seed(0)
    result = run_recipe(recipe, tmp_path / "run", progress=False, log=lambda message: None)
    row = next(r for r in result.rows if r["stage"] == "native")
    assert row["step"] == "native gradual -> 0.60, regrow" and row["target"] == 0.6
    model, _ = load_model(result.run_dir / "model.pt")
    for name in ("features.3", "features.7"):
        mask = model.get_submodule(name).weight_mask
        assert int((mask == 0).sum()) == round(0.6 * mask.numel()), name
    with pytest.raises(ConfigError, match="remove \\['sparsity'\\]"):
        load_recipe("fashion_mnist_native", [stage.replace("l1: 1.0e-5", "l1: 1.0e-5, sparsity: 0.3")])
    with pytest.raises(ConfigError, match="needs threshold \\(t0\\), sparsity, or a gradual"):
        load_recipe("fashion_mnist_native", [stage.replace(
            ", gradual: {final: 0.6, initial: 0.2, end: 0.5, every_steps: 2}", "")])
