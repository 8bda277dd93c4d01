"""The one mask mechanism: torch.nn.utils.prune interop, gradient scaling, copies, files, errors."""
import copy
import io
import os

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from sparsewino import prune as sp
from sparsewino.nn import WinogradConv2d


def _random_mask(shape, density=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < density


def _net(dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                         WinogradConv2d(6, 5, 3, padding=1, tile=2, domain="winograd"),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)).to(dtype)


def test_reparametrisation_is_torch_prune_compatible():
    conv = nn.Conv2d(3, 4, 3)
    mask = _random_mask(conv.weight.shape)
    original = conv.weight.detach().clone()
    sp.apply_mask(conv, mask)
    assert prune.is_pruned(conv)
    assert "weight_orig" in dict(conv.named_parameters()) and "weight" not in dict(conv.named_parameters())
    assert torch.equal(conv.weight_mask, mask.float())
    assert torch.equal(conv.weight, original * mask)
    prune.remove(conv, "weight")
    assert not prune.is_pruned(conv) and isinstance(conv.weight, nn.Parameter)
    assert torch.equal(conv.weight.detach(), original * mask)
    assert "weight_mask" not in dict(conv.named_buffers())


def test_takes_over_a_torch_mask_and_combines():
    conv = nn.Conv2d(4, 4, 3)
    prune.l1_unstructured(conv, "weight", amount=0.3)
    first = conv.weight_mask.clone()
    sp.magnitude(conv, 0.6)
    hooks = [h for h in conv._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]
    assert len(hooks) == 1 and isinstance(hooks[0], sp.Mask)
    assert torch.all(conv.weight_mask <= first)                    # earlier pruning kept
    assert int((conv.weight_mask == 0).sum()) == round(0.6 * conv.weight.numel())
    # re-pruning to a lower amount never revives weights
    sp.magnitude(conv, 0.2)
    assert int((conv.weight_mask == 0).sum()) == round(0.6 * conv.weight.numel())
    assert sp.pruning_info(conv)["sparsity"] == pytest.approx(0.6, abs=1 / 144)


def test_combine_false_replaces_the_mask():
    conv = nn.Conv2d(2, 2, 3)
    sp.apply_mask(conv, _random_mask(conv.weight.shape, seed=1))
    new = _random_mask(conv.weight.shape, seed=2)
    sp.apply_mask(conv, new, combine=False)
    assert torch.equal(conv.weight_mask, new.float())


def test_gradient_scaling_multiplies_the_gradient_of_orig():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3).double()
    mask = _random_mask(conv.weight.shape, 0.7)
    scale = torch.rand(1, 1, 3, 3, dtype=torch.float64) + 0.1
    reference = copy.deepcopy(conv)
    sp.apply_mask(conv, mask)
    sp.set_grad_scale(conv, scale)
    with torch.no_grad():
        reference.weight.mul_(mask)
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    grad = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    conv(x).backward(grad)
    reference(x).backward(grad)
    torch.testing.assert_close(conv.weight_orig.grad, reference.weight.grad * mask * scale,
                               rtol=1e-13, atol=0)
    torch.testing.assert_close(conv.bias.grad, reference.bias.grad)
    # clearing the scale restores plain masked gradients
    sp.set_grad_scale(conv, None)
    conv.weight_orig.grad = None
    conv(x).backward(grad)
    torch.testing.assert_close(conv.weight_orig.grad, reference.weight.grad * mask, rtol=1e-13, atol=0)
    with pytest.raises(ValueError, match="does not broadcast"):
        sp.set_grad_scale(conv, torch.ones(4, 3))


def test_grad_scale_on_unpruned_tensor_masks_with_ones():
    conv = sp.set_grad_scale(nn.Conv2d(1, 1, 3), torch.full((1, 1, 3, 3), 0.25))
    assert prune.is_pruned(conv) and torch.all(conv.weight_mask == 1)
    conv(torch.ones(1, 1, 3, 3)).sum().backward()
    assert torch.allclose(conv.weight_orig.grad, torch.full((1, 1, 3, 3), 0.25))


def _prune_net(net):
    sp.magnitude(net[0], 0.5)
    sp.winograd_domain(net[2], 0.6)                      # mask + gradient scale
    return net


def test_deepcopy_and_pickle_keep_masks_and_scales(train, check_masks_hold, mask_snapshot):
    net = _prune_net(_net())
    x = torch.randn(2, 3, 7, 7)
    expected = net(x)                                      # module.weight is now a non-leaf
    twin = copy.deepcopy(net)
    torch.testing.assert_close(twin(x), expected)
    assert torch.equal(twin[2].weight_grad_scale, net[2].weight_grad_scale)
    assert twin[2].weight_orig is not net[2].weight_orig
    before = mask_snapshot(twin)
    train(twin, "sgd", steps=5, shape=(2, 3, 7, 7))
    check_masks_hold(twin, before)
    torch.testing.assert_close(net(x), expected)           # the original is untouched
    copy.deepcopy(twin)                                    # a trained copy copies again
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    torch.testing.assert_close(loaded(x), expected)
    copy.deepcopy(loaded)


def test_state_dict_roundtrip_into_pruned_and_fresh_models(tmp_path):
    net = _prune_net(_net())
    x = torch.randn(2, 3, 7, 7)
    expected = net(x)
    torch.save(net.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert {"0.weight_orig", "0.weight_mask", "2.weight_grad_scale"} <= set(state)
    same = _prune_net(_net())
    torch.manual_seed(5)
    for p in same.parameters():
        p.data.normal_()
    same.load_state_dict(state)
    torch.testing.assert_close(same(x), expected)
    fresh = sp.load_pruned_state_dict(_net(), state)
    torch.testing.assert_close(fresh[2].weight, net[2].weight)     # refreshed before any forward
    torch.testing.assert_close(fresh(x), expected)
    assert torch.equal(fresh[2].weight_grad_scale, net[2].weight_grad_scale)
    assert prune.is_pruned(fresh[0]) and not prune.is_pruned(fresh[5])


def test_mask_file_is_small_and_safe(tmp_path):
    net = _prune_net(_net())
    path = sp.save_masks(net, tmp_path / "masks.pt")
    raw = torch.load(path, weights_only=True)               # plain tensors and a string
    assert raw["format"] == "sparsewino-masks-v1" and raw["mask/0.weight"].dtype == torch.uint8
    entries = net[0].weight.numel() + net[2].weight.numel()
    scales = net[2].weight_grad_scale.numel() * 4
    assert os.path.getsize(path) < entries / 8 + scales + 4096
    other = _net()
    torch.manual_seed(1)
    for p in other.parameters():
        p.data.normal_()
    sp.load_masks(other, path)
    assert torch.equal(other[0].weight_mask, net[0].weight_mask)
    assert torch.equal(other[2].weight_mask, net[2].weight_mask)
    assert torch.equal(other[2].weight_grad_scale, net[2].weight_grad_scale)
    assert torch.all(other[2].weight[net[2].weight_mask == 0] == 0)


def test_mask_file_strictness(tmp_path):
    net = _prune_net(_net())
    path = sp.save_masks(net, tmp_path / "masks.pt")
    extra = _net()
    sp.magnitude(extra[5], 0.5)                           # a mask the file lacks
    with pytest.raises(ValueError, match="masks the file lacks"):
        sp.load_masks(extra, path)
    sp.load_masks(extra, path, strict=False)
    wrong = nn.Sequential(nn.Conv2d(3, 6, 3))
    with pytest.raises(ValueError, match="names no module"):
        sp.load_masks(wrong, path)
    with pytest.raises(ValueError, match="not a sparsewino mask file"):
        sp.load_masks(net, {"format": "other"})


def test_temporary_mask_restores_both_kinds_of_layer():
    conv = nn.Conv2d(2, 2, 3)
    original = conv.weight.detach().clone()
    zeros = torch.zeros_like(original)
    with sp.temporary_mask(conv, zeros):
        assert torch.all(conv.weight == 0)
    assert torch.equal(conv.weight.detach(), original)
    mask = _random_mask(original.shape)
    sp.apply_mask(conv, mask)
    with sp.temporary_mask(conv, zeros):
        assert torch.all(conv.weight == 0) and torch.all(conv(torch.randn(1, 2, 3, 3)) == conv.bias.view(1, 2, 1, 1))
    assert torch.equal(conv.weight_mask, mask.float()) and torch.equal(conv.weight, original * mask)


def test_finalize_bakes_every_mask():
    net = _prune_net(_net())
    prune.l1_unstructured(net[5], "weight", 0.5)           # torch's own masks too
    x = torch.randn(2, 3, 7, 7)
    expected = net(x)
    sp.finalize(net)
    assert not any(prune.is_pruned(m) for m in net.modules())
    assert not any(n.endswith(("_mask", "_grad_scale")) for n, _ in net.named_buffers())
    torch.testing.assert_close(net(x), expected)
    copy.deepcopy(net)


def test_bad_input_gets_clear_errors():
    conv = nn.Conv2d(2, 2, 3)
    with pytest.raises(ValueError, match="does not match"):
        sp.apply_mask(conv, torch.ones(2, 2, 2, 2))
    with pytest.raises(ValueError, match="no parameter 'kernel'"):
        sp.apply_mask(conv, torch.ones(2, 2, 3, 3), "kernel")
    for amount, error in [(True, TypeError), (-0.1, ValueError), (1.5, ValueError), (37, ValueError),
                          ("0.5", TypeError), (float("nan"), ValueError)]:
        with pytest.raises(error):
            sp.magnitude(conv, amount)
    assert sp.amount_to_count(0.5, 36) == 18 and sp.amount_to_count(7, 36) == 7
    with pytest.raises(ValueError, match="not pruned"):
        sp.refresh(nn.Conv2d(1, 1, 1))
