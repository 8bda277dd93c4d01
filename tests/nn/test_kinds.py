"""Every registered layer kind answers the LayerKind protocol, and the answers match the layers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsewino.nn import (
    LAYER_KINDS,
    AdderConv2d,
    LowRankWinogradConv2d,
    LowRankWinogradConv3d,
    WinogradAdderConv2d,
    WinogradConv1d,
    WinogradConv2d,
    WinogradConv3d,
    adder_layer_types,
    is_low_rank,
    set_exponent,
)
from sparsewino.nn.kinds import (
    MADE_BY,
    LayerKind,
    convertible_types,
    is_adder_layer,
    kind_of,
    layer_kind,
    layer_types,
    low_rank_kind,
    winograd_layer_types,
)
from sparsewino.prune import apply_mask

#: One small layer of every registered kind, by kind name.
SAMPLES = {
    "conv1d": lambda: WinogradConv1d(2, 3, 3, padding=1, tile=2),
    "conv2d": lambda: WinogradConv2d(2, 3, 3, padding=1, tile=2, domain="winograd"),
    "conv3d": lambda: WinogradConv3d(2, 3, 3, padding=1, tile=2),
    "lowrank2d": lambda: LowRankWinogradConv2d(2, 3, 3, rank=2, tile=2, padding=1),
    "lowrank3d": lambda: LowRankWinogradConv3d(2, 3, 3, rank=2, tile=2, padding=1),
    "adder2d": lambda: AdderConv2d(2, 3, 3, padding=1, p=1.5),
    "winograd_adder2d": lambda: WinogradAdderConv2d(2, 3, 3, padding=1, tile=2),
}


def test_every_registered_kind_has_a_sample():
    assert sorted(SAMPLES) == LAYER_KINDS.names()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_kind_answers_the_protocol(name):
    torch.manual_seed(0)
    layer = SAMPLES[name]()
    kind = LAYER_KINDS.lookup(name)
    assert layer_kind(layer) is kind and kind_of(layer) is kind
    assert kind.made_by in MADE_BY
    domain = kind.weight_domain(layer)
    assert domain == getattr(layer, "domain", kind.domain)
    weight = kind.effective_weight(layer)
    assert isinstance(getattr(layer, kind.mask_name), torch.Tensor)
    q = kind.winograd_weight(layer)
    if kind.low_rank:
        torch.testing.assert_close(weight, (layer.u @ layer.v).reshape(weight.shape))
        assert kind.rank(layer) == layer.rank == 2 and kind.mask_name == "v"
    else:
        assert weight is layer.weight and kind.rank(layer) is None and kind.mask_name == "weight"
    if domain == "winograd":
        torch.testing.assert_close(q, weight, rtol=0, atol=0)
    elif hasattr(layer, "algorithms"):
        torch.testing.assert_close(q, layer.winograd_weight())
    else:
        assert q is None                                   # AdderConv2d: no Winograd domain
    assert kind.exponent(layer) == (layer.p if kind.adder else None)
    assert is_adder_layer(layer) is kind.adder and is_low_rank(layer) is kind.low_rank
    assert isinstance(layer, layer_types())
    assert isinstance(layer, winograd_layer_types()) is (not kind.adder)
    assert isinstance(layer, adder_layer_types()) is kind.adder


def test_most_derived_kind_wins_and_torch_layers_map_to_convert_kinds():
    low = SAMPLES["lowrank3d"]()
    assert isinstance(low, WinogradConv3d) and layer_kind(low).name == "lowrank3d"
    assert kind_of(nn.Conv3d(2, 2, 3)).name == "conv3d"          # not the low-rank kind
    assert kind_of(nn.Conv2d(2, 2, 3)).name == "conv2d"          # not an adder kind
    assert layer_kind(nn.Conv2d(2, 2, 3)) is None and kind_of(nn.Linear(2, 2)) is None
    assert low_rank_kind(nn.Conv3d(2, 2, 3)).name == "lowrank3d"
    assert low_rank_kind(WinogradConv2d(2, 2, 3)).name == "lowrank2d"
    assert low_rank_kind(WinogradConv1d(2, 2, 3)) is None
    assert low_rank_kind(AdderConv2d(2, 2, 3)) is None
    assert set(convertible_types()) == {nn.Conv1d, nn.Conv2d, nn.Conv3d}


def test_masked_weights_are_what_the_kind_reports():
    layer = apply_mask(WinogradConv2d(2, 3, 3, tile=2), torch.zeros(3, 2, 3, 3))
    kind = kind_of(layer)
    assert (kind.effective_weight(layer) == 0).all()
    assert (kind.winograd_weight(layer) == 0).all()
    adder = apply_mask(WinogradAdderConv2d(2, 3, 3, tile=2), torch.zeros(3, 2, 4, 4))
    assert (kind_of(adder).winograd_weight(adder) == 0).all()


def test_set_exponent_reaches_every_adder_kind_through_the_registry():
    net = set_exponent(nn.Sequential(SAMPLES["adder2d"](), SAMPLES["winograd_adder2d"](),
                                     SAMPLES["conv2d"]()), 1.25)
    assert [kind_of(m).exponent(m) for m in net] == [1.25, 1.25, None]


def test_bad_kind_declarations_are_refused():
    with pytest.raises(ValueError, match="made_by"):
        LayerKind("x", "x", nn.Conv2d, WinogradConv2d, made_by="sometimes")
    with pytest.raises(ValueError, match="domain"):
        LayerKind("x", "x", nn.Conv2d, WinogradConv2d, domain="frequency")
