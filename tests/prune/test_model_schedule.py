"""Model-level helper (overrides, exclusions, global), schedules, callbacks, native thresholds."""
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from sparsewino import prune as sp
from sparsewino.nn import WinogradConv2d
from sparsewino.prune.criteria import output_norm_factors


def _vgg():
    torch.manual_seed(0)
    return nn.Sequential(nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU()),
                         nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()),
                         nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.Conv2d(16, 16, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def _sparsity(module, name="weight"):
    return float((getattr(module, name) == 0).double().mean())


def test_overrides_exclusions_and_reports():
    net = _vgg()
    sp.prune_model(net, "magnitude", 0.5, overrides={"0.*": 0.2}, exclude=["3"])
    assert _sparsity(net[0][0]) == pytest.approx(0.2, abs=1 / 72)
    assert _sparsity(net[1][0]) == pytest.approx(0.5, abs=1 / 576)
    assert _sparsity(net[2]) == pytest.approx(0.5, abs=1 / 1152)
    assert not prune.is_pruned(net[3]) and not prune.is_pruned(net[6])
    info = sp.pruning_info(net[1][0])
    assert info["method"] == "magnitude" and info["amount"] == 0.5 and info["scope"] == "layer"
    with pytest.raises(ValueError, match="match no prunable layer"):
        sp.prune_model(net, "magnitude", 0.5, overrides={"features.0": 0.2})
    with pytest.raises(ValueError, match="unknown pruning method"):
        sp.prune_model(net, "lottery", 0.5)
    with pytest.raises(ValueError, match="no layer"):
        sp.prune_model(net, "winograd_domain", 0.5)
    with pytest.raises(ValueError, match="scope"):
        sp.prune_model(net, "magnitude", 0.5, scope="everything")


def test_global_magnitude_matches_torch_global_unstructured():
    ours, theirs = _vgg(), _vgg()
    def convs(net):
        return [net[0][0], net[1][0], net[2], net[3]]

    sp.prune_model(ours, "magnitude", 0.6, scope="global")
    prune.global_unstructured([(m, "weight") for m in convs(theirs)], prune.L1Unstructured, amount=0.6)
    for a, b in zip(convs(ours), convs(theirs)):
        assert torch.equal(a.weight_mask, b.weight_mask)
    assert sp.pruning_info(convs(ours)[0])["scope"] == "global"


def test_global_with_overrides_prunes_overridden_layers_alone():
    net = _vgg()
    sp.prune_model(net, "magnitude", 0.7, scope="global", overrides={"0.0": 0.1}, exclude=["3"])
    assert _sparsity(net[0][0]) == pytest.approx(0.1, abs=1 / 72)
    zeros = sum(int((m.weight == 0).sum()) for m in (net[1][0], net[2]))
    assert zeros == round(0.7 * (576 + 1152))


def test_step_and_cubic_schedules():
    steps = sp.StepSchedule([0.2, 0.4, 0.6, 0.8], every=2, start=1)
    assert [steps.amount_at(t) for t in range(10)] == [None, 0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8, 0.8]
    cubic = sp.CubicSchedule(0.9, begin=10, end=110, initial=0.1, every=10)
    values = [cubic.amount_at(t) for t in range(0, 130)]
    assert values[:10] == [None] * 10 and values[10] == pytest.approx(0.1) and values[115] == 0.9
    assert values[19] == values[10] and values[20] > values[19]          # updated every 10 steps
    assert values[60] == pytest.approx(0.9 - 0.8 * 0.5 ** 3)
    finite = [v for v in values if v is not None]
    assert finite == sorted(finite)
    for bad in (lambda: sp.StepSchedule([0.5, 0.3]), lambda: sp.StepSchedule([]),
                lambda: sp.CubicSchedule(0.5, begin=5, end=5), lambda: sp.CubicSchedule(1.2, 0, 10),
                lambda: sp.StepSchedule([0.1], unit="batch")):
        with pytest.raises(ValueError):
            bad()


def test_pruning_callback_follows_its_schedule_and_resumes():
    net = _vgg()
    callback = sp.PruningCallback("spatial_winograd", sp.StepSchedule([0.2, 0.4, 0.6]),
                                  overrides={"0.0": 0.1})
    callback.on_train_begin(net)
    reached = [sp.pruning_info(net[1][0])["sparsity"]]
    for epoch in range(3):
        callback.after_step(net, epoch)                   # epoch schedule: steps do nothing
        callback.on_epoch_end(net, epoch)
        reached.append(sp.pruning_info(net[1][0])["sparsity"])
    assert reached == pytest.approx([0.2, 0.4, 0.6, 0.6], abs=1 / 64)
    assert sp.pruning_info(net[0][0])["sparsity"] == pytest.approx(0.1, abs=1 / 8)
    assert [a for _, a in callback.history] == [0.2, 0.4, 0.6]
    resumed = sp.PruningCallback("spatial_winograd", sp.StepSchedule([0.2, 0.4, 0.6]))
    resumed.load_state_dict(callback.state_dict())
    resumed.on_train_begin(net)
    assert resumed.history == callback.history
    gradual = sp.PruningCallback("magnitude", sp.CubicSchedule(0.8, begin=0, end=4), exclude=["3"])
    model = _vgg()
    gradual.on_train_begin(model)
    amounts = [_sparsity(model[2])]
    for step in range(6):
        gradual.after_step(model, step)
        amounts.append(_sparsity(model[2]))
    assert amounts == pytest.approx([0.0, 0.4625, 0.7, 0.7875, 0.8, 0.8, 0.8], abs=1 / 1152)


def test_native_threshold_is_position_dependent():
    torch.manual_seed(0)
    net = nn.Sequential(WinogradConv2d(3, 4, 3, padding=1, tile=4, domain="winograd"))
    q = net[0].weight.detach().clone()
    norms = output_norm_factors(net[0].algorithms)
    t0 = float((q.abs().double() * norms).median())
    callback = sp.NativeWinogradPruning(net, threshold=t0, l1=0.01)
    callback.on_train_begin(net)
    expected = q.abs().double() <= t0 / norms                # Li et al.: |Q_i| <= t0 / ||row_i(A⊗A)||
    assert torch.equal(net[0].weight_mask == 0, expected)
    assert expected.float().mean() == pytest.approx(0.5, abs=1 / q.numel())
    penalty = callback.regularization(net)
    torch.testing.assert_close(penalty, 0.01 * (q * ~expected).abs().sum())
    penalty.backward()
    assert net[0].weight_orig.grad is not None
    assert callback.state_dict() == {"thresholds": {"0": t0}}
    other = sp.NativeWinogradPruning(threshold={"0": 1.0})
    other.load_state_dict(callback.state_dict())
    assert other.thresholds == {"0": t0}


def test_native_needs_winograd_layers_and_one_threshold_rule():
    with pytest.raises(ValueError, match="exactly one"):
        sp.NativeWinogradPruning(threshold=0.1, sparsity=0.5)
    with pytest.raises(ValueError, match="no Winograd-domain layer"):
        sp.NativeWinogradPruning(_vgg(), threshold=0.1)
    net = nn.Sequential(WinogradConv2d(1, 2, 3, domain="winograd"), WinogradConv2d(2, 2, 3, domain="winograd"))
    callback = sp.NativeWinogradPruning(net, threshold={"0": 0.1})
    with pytest.raises(ValueError, match="no threshold given for layer '1'"):
        callback.on_train_begin(net)


def test_callbacks_inside_the_trainer():
    from sparsewino.data import BatchLoader, Normalize, fake_dataset
    from sparsewino.train import OptimizerConfig, TrainConfig, fit

    torch.manual_seed(0)
    net = nn.Sequential(WinogradConv2d(1, 4, 3, padding=1, tile=2, domain="winograd"), nn.ReLU(),
                        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    loader = BatchLoader(fake_dataset(48, num_classes=3, image_size=8), 16, Normalize((0.5,), (0.25,)),
                         shuffle=True, seed=0)
    native = sp.NativeWinogradPruning(net, sparsity=0.3, l1=1e-3)
    scheduled = sp.PruningCallback("spatial_winograd", sp.StepSchedule([0.3, 0.5]), include=["2"])
    fit(net, loader, TrainConfig(epochs=2, batch_size=16, optimizer=OptimizerConfig(lr=0.05)),
        callbacks=[native, scheduled], progress=False)
    assert sp.pruning_info(net[0])["method"] == "native" and _sparsity(net[0]) >= 0.3 - 1 / 144
    assert sp.pruning_info(net[2])["sparsity"] == pytest.approx(0.5, abs=1 / 24)
    report = sp.stats(net)
    assert report["2"].winograd_sparsity == pytest.approx(sp.pruning_info(net[2])["sparsity"])


def test_cubic_schedule_reaches_final_at_end_whatever_every_is():
    """A ramp shorter than ``every`` (a small data set's epoch) used to stay at ``initial``
    until the next multiple of ``every``, possibly after the fine-tune ended."""
    cubic = sp.CubicSchedule(0.8, begin=0, end=32, initial=0.2, every=50)
    assert [cubic.amount_at(t) for t in (0, 31)] == [pytest.approx(0.2)] * 2
    assert cubic.amount_at(32) == 0.8 and cubic.amount_at(40) == 0.8
    odd = sp.CubicSchedule(0.9, begin=0, end=25, every=10)
    assert odd.amount_at(24) == odd.amount_at(20) < 0.9 and odd.amount_at(25) == 0.9
