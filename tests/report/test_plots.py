"""Plots stay readable: stages sharing a point all show, heatmap grids are not half empty."""
import matplotlib.axes
import pytest

from sparsewino.prune.stats import panel_grid
from sparsewino.report import plot_accuracy_vs_sparsity

ROWS = [{"stage": "baseline", "accuracy": 0.9, "winograd_sparsity": 0.0},
        {"stage": "to_winograd", "accuracy": 0.9, "winograd_sparsity": 0.0},     # the same point
        {"stage": "step2", "accuracy": 0.88, "winograd_sparsity": 0.7},
        {"stage": "final", "accuracy": 0.88, "winograd_sparsity": 0.7}]          # the same point


def test_stages_sharing_a_point_stay_visible(tmp_path, monkeypatch):
    calls = []
    real = matplotlib.axes.Axes.scatter

    def record(self, x, y, **kwargs):
        calls.append((list(x), list(y), kwargs))
        return real(self, x, y, **kwargs)
    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", record)
    assert plot_accuracy_vs_sparsity(ROWS, tmp_path / "a.png").is_file()
    assert [c[2]["label"] for c in calls] == ["baseline", "to_winograd", "step2", "final"]
    for earlier, later in zip(calls, calls[1:]):
        # drawn on top, but smaller and of another shape: the earlier marker shows around it
        assert later[2]["zorder"] > earlier[2]["zorder"] and later[2]["s"] <= 0.5 * earlier[2]["s"]
        assert later[2]["marker"] != earlier[2]["marker"]


@pytest.mark.parametrize("count", range(1, 21))
def test_heatmap_grids_are_filled(count):
    rows, cols = panel_grid(count)
    assert rows * cols >= count and cols <= 6
    assert rows * cols - count < rows                          # at most one short row's gap
    if count <= 6:
        assert (rows, cols) == (1, count)
