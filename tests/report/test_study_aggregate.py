"""The study report's numbers: means, sample standard deviations and accuracy changes paired per seed."""
from __future__ import annotations

import statistics
from types import SimpleNamespace

import pytest

from sparsewino.report.study import aggregate


def _study(cells: dict[str, list[int]]) -> SimpleNamespace:
    runs = [SimpleNamespace(cell=cell, method=cell, seed=seed, status=lambda: "finished")
            for cell, seeds in cells.items() for seed in seeds]
    return SimpleNamespace(runs=runs)


def _row(cell: str, seed: int, **values) -> dict:
    return {"cell": cell, "method": cell, "seed": seed, **values}


def test_means_stds_and_deltas_pair_each_seed_with_its_own_baseline():
    # Seed 1's baseline is 10 points below seed 0's: pairing every seed with seed 0's baseline
    # would give a mean change of -6.25 points instead of -1.25.
    study = _study({"baseline": [0, 1], "m": [0, 1]})
    steps = [
        _row("baseline", 0, stage="baseline", accuracy=0.90, seconds=10.0),
        _row("baseline", 1, stage="baseline", accuracy=0.80, seconds=12.0),
        _row("m", 0, stage="prune", step="0.5", kind="prune", accuracy=0.89, winograd_sparsity=0.5,
             seconds=3.0),
        _row("m", 0, stage="final", accuracy=0.885, winograd_sparsity=0.52, seconds=1.0),
        _row("m", 1, stage="prune", step="0.5", kind="prune", accuracy=0.785, winograd_sparsity=0.5,
             seconds=4.0),
        _row("m", 1, stage="final", accuracy=0.79, winograd_sparsity=0.54, seconds=1.0),
    ]
    finals, curves = aggregate(study, steps)
    final = next(f for f in finals if f["cell"] == "m")
    assert final["runs"] == 2 and final["of"] == 2
    assert final["accuracy"] == pytest.approx((0.885 + 0.79) / 2)
    assert final["accuracy_std"] == pytest.approx(statistics.stdev([0.885, 0.79]))
    assert final["winograd_sparsity"] == pytest.approx(0.53)
    assert final["winograd_sparsity_std"] == pytest.approx(statistics.stdev([0.52, 0.54]))
    assert final["delta"] == pytest.approx(-0.0125)
    assert final["delta_std"] == pytest.approx(statistics.stdev([-0.015, -0.01]))
    assert final["seconds"] == pytest.approx(4.5) and final["seconds_std"] == pytest.approx(
        statistics.stdev([4.0, 5.0]))
    baseline = next(f for f in finals if f["cell"] == "baseline")
    assert baseline["delta"] is None and baseline["accuracy"] == pytest.approx(0.85)
    (point,) = curves
    assert (point["stage"], point["step"], point["runs"]) == ("prune", "0.5", 2)
    assert point["delta"] == pytest.approx(-0.0125)
    assert point["delta_std"] == pytest.approx(statistics.stdev([-0.01, -0.015]))


def test_a_seed_without_its_baseline_is_left_out_of_the_change():
    study = _study({"baseline": [0], "m": [0, 1]})
    steps = [_row("baseline", 0, stage="baseline", accuracy=0.90),
             _row("m", 0, stage="final", accuracy=0.88),
             _row("m", 1, stage="final", accuracy=0.50)]       # seed 1 has no baseline
    finals, _ = aggregate(study, steps)
    final = next(f for f in finals if f["cell"] == "m")
    assert final["delta"] == pytest.approx(-0.02) and final["delta_std"] == 0.0
    assert final["accuracy"] == pytest.approx(0.69)               # the accuracy mean keeps both
