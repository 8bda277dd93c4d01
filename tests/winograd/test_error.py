"""Error measurement and tile choice by error budget."""
import pytest

from sparsewino.winograd import choose_tile, measure_error, naive_points

PUBLISHED = {2: 7.65e-8, 4: 3.29e-7, 6: 8.79e-7}   # Barabasz et al. (TVM's table), F(m, 3)


@pytest.mark.parametrize("m", [2, 4, 6])
def test_default_points_error_is_close_to_published(m):
    err = measure_error(m, 3)
    assert PUBLISHED[m] / 2 < err < PUBLISHED[m] * 1.5


def test_error_grows_with_tile_size():
    errors = [measure_error(m, 3) for m in (2, 4, 6, 8)]
    assert errors == sorted(errors)


@pytest.mark.parametrize("m,r", [(6, 3), (8, 3), (4, 5), (6, 2)])
def test_curated_points_beat_naive_points(m, r):
    assert measure_error(m, r) < measure_error(m, r, points=naive_points(m + r - 2))


def test_float64_error_is_tiny():
    import torch
    assert measure_error(4, 3, dtype=torch.float64) < 1e-14


def test_error_measurement_is_repeatable_and_seeded():
    assert measure_error(4, 3, samples=500, seed=3) == measure_error(4, 3, samples=500, seed=3)
    assert measure_error(4, 3, samples=500, seed=3) != measure_error(4, 3, samples=500, seed=4)


def test_choose_tile_respects_budget():
    assert choose_tile(1) == 1
    small, large = choose_tile(3, budget=1e-7), choose_tile(3, budget=1e-5)
    assert small == 2 and large > small
    assert measure_error(large, 3) <= 1e-5
    assert choose_tile(3, budget=1e-12) == 1            # nothing fits: trivial (direct) algorithm
    assert choose_tile(3, budget=1.0, max_tile=6) == 6


def test_requested_tiles_are_checked_against_the_error_limit():
    """Explicit tiles: kept within ERROR_LIMIT, else the largest smaller accurate tile (1: direct)."""
    from sparsewino.winograd import ERROR_LIMIT, tile_error
    assert [choose_tile(3, requested=m) for m in (2, 4, 6, 8, 9, 10, 14)] == [2, 4, 6, 8, 8, 8, 8]
    assert choose_tile(9, requested=4) == 1 and choose_tile(11, requested=4) == 1
    assert tile_error(10, 3) > 1.0 > ERROR_LIMIT > tile_error(8, 3)
    assert choose_tile(3, requested=4, budget=1e-7) == 2                 # a stricter budget
    assert choose_tile(3, requested=6, points=naive_points(7)) == 6      # accurate custom points kept
    with pytest.raises(ValueError, match="over the budget"):
        choose_tile(3, requested=8, points=naive_points(9))              # naive F(8,3): 6e-3
    assert choose_tile(1, requested=7) == 1
