"""Every tile the layers accept computes the convolution in float32; inaccurate tiles are replaced."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsewino.nn import WinogradConv2d, WinogradConv3d, convert
from sparsewino.winograd import ERROR_LIMIT, WinogradAccuracyWarning, tile_error


def _build(cls, r, m, decompose="none"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = cls(1, 1, r, tile=m, decompose=decompose)
    return layer, [w for w in caught if issubclass(w.category, WinogradAccuracyWarning)]


def _mean_error(layer, size, dims, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(8, 1, *([size] * dims), generator=gen) * 2 - 1
    with torch.no_grad():
        layer.weight.uniform_(-1, 1, generator=gen)
        layer.bias.zero_()
        conv = F.conv2d if dims == 2 else F.conv3d
        reference = conv(x.double(), layer.weight.double())
        return (layer(x).double() - reference).abs().mean().item()


@pytest.mark.parametrize("r", range(2, 16))
def test_every_accepted_2d_tile_is_accurate_in_float32(r):
    """All (m, r) with input tiles of up to 16 points: the layer's float32 output stays within
    the error limit; a tile beyond it is replaced, with a warning, never used silently."""
    for m in range(1, 18 - r):
        layer, caught = _build(WinogradConv2d, r, m)
        replaced = layer.tile != (m, m)
        assert replaced == (tile_error(m, r) > ERROR_LIMIT), (m, r, layer.tile)
        assert len(caught) == replaced and (not replaced or f"F({m},{r})" in str(caught[0].message))
        assert _mean_error(layer, 2 * (m + r), dims=2) <= ERROR_LIMIT, (m, r, layer.tile)


def test_known_limits_of_the_curated_algorithms():
    assert WinogradConv2d(1, 1, 3, tile=8).tile == (8, 8)          # F(8,3): curated points
    for r, m, safe in [(3, 10, 8), (5, 8, 6), (7, 6, 4), (9, 4, 1), (11, 4, 1)]:
        layer, caught = _build(WinogradConv2d, r, m)
        assert layer.tile == (safe, safe) and caught, (r, m)


@pytest.mark.parametrize("r,m,safe", [(3, 10, 8), (5, 7, 6), (9, 2, 1)])
def test_3d_layers_replace_inaccurate_tiles(r, m, safe):
    layer, caught = _build(WinogradConv3d, r, m)
    assert layer.tile == (safe,) * 3 and len(caught) == 1
    assert _mean_error(layer, m + r + 1, dims=3) <= ERROR_LIMIT


def test_custom_points_beyond_the_budget_are_refused():
    with pytest.raises(ValueError, match="over the budget"):
        WinogradConv2d(1, 1, 3, tile=9, points=list(range(-5, 5)))
    layer = WinogradConv2d(1, 1, 3, tile=2, points=[0, 1, -1])       # accurate custom points kept
    assert layer.algorithms[0].points == (0, 1, -1)


def test_error_budget_applies_to_requested_tiles():
    layer, caught = _build(lambda *a, **k: WinogradConv2d(*a, error_budget=1e-7, **k), 3, 4)
    assert layer.tile == (2, 2) and caught


def test_convert_replaces_or_skips_inaccurate_tiles():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 9, padding=4),
                        nn.Conv2d(4, 4, 5, padding=2))
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    expected = net(x)
    with pytest.warns(WinogradAccuracyWarning, match="2 layer"):
        net, report = convert(net, tile=7, decompose="none")
    assert report.converted == ["0", "2"] and net[0].tile == (7, 7) and net[2].tile == (6, 6)
    assert "no Winograd tile is accurate" in report.skipped["1"] and isinstance(net[1], nn.Conv2d)
    torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-4)


def test_large_kernels_are_decomposed_instead_of_left_alone():
    """With DWM (the default), the 9x9 convolution that no plain tile computes accurately
    becomes small pieces, and every layer stays accurate in float32."""
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 9, padding=4),
                        nn.Conv2d(4, 4, 5, padding=2))
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    expected = net(x)
    net, report = convert(net, tile=4)
    assert report.converted == ["0", "1", "2"]
    assert net[1].decomposition is not None and max(net[1].piece_size) <= 3
    assert "DWM" in dict((d.name, d.reason) for d in report)["1"]
    torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-4)
