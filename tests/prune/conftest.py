"""Shared helpers for the pruning tests: small random nets and a tiny training loop."""
import pytest
import torch

from sparsewino import prune as sp


def _train(model, optimizer="sgd", steps=50, shape=(4, 3, 9, 9), callbacks=(), lr=None, seed=0):
    """``steps`` optimizer steps on random data with a loss that pushes every weight."""
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr or 0.01, momentum=0.9, weight_decay=0.05)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr or 0.01, weight_decay=0.01)
    else:
        raise ValueError(optimizer)
    for cb in callbacks:
        getattr(cb, "on_train_begin", lambda m: None)(model)
    dtype = next(model.parameters()).dtype
    for step in range(steps):
        x = torch.randn(*shape, dtype=dtype)
        loss = (model(x) - 1.0).pow(2).mean()
        for cb in callbacks:
            term = cb.regularization(model) if hasattr(cb, "regularization") else None
            if term is not None:
                loss = loss + term
        assert torch.isfinite(loss), f"training diverged at step {step}"
        opt.zero_grad()
        loss.backward()
        opt.step()
        for cb in callbacks:
            if hasattr(cb, "after_step"):
                cb.after_step(model, step)
    return model


@pytest.fixture
def train():
    return _train


def masks_of(model):
    """{qualified tensor name: mask clone} for every pruned tensor."""
    return {f"{m}.{t}": sp.get_mask(mod, t).detach().clone() for m, mod, t in sp.masked_tensors(model)}


@pytest.fixture
def mask_snapshot():
    return masks_of


def assert_masks_hold(model, before):
    """Masks unchanged and every masked entry of the effective tensor exactly zero."""
    after = masks_of(model)
    assert after.keys() == before.keys()
    for key, mask in before.items():
        assert torch.equal(after[key], mask), key
        module_name, _, tensor = key.rpartition(".")
        module = model.get_submodule(module_name)
        value = sp.effective_weight(module, tensor).detach()
        assert torch.all(value[mask == 0] == 0), key
        assert torch.all(getattr(module, tensor)[mask == 0] == 0), key


@pytest.fixture
def check_masks_hold():
    return assert_masks_hold
