"""Report writing: headline numbers, Markdown/CSV/JSON tables and PNG plots from result rows."""
import csv
import io
import json

import torch

from sparsewino.models import create_model
from sparsewino.nn import convert
from sparsewino.prune import prune_model
from sparsewino.report import format_value, headline, rows_to_csv, rows_to_markdown, write_report

ROWS = [
    {"stage": "baseline", "kind": "train", "step": "", "accuracy": 0.9, "spatial_sparsity": 0.0,
     "winograd_sparsity": 0.0, "reduction_vs_direct": 3.3, "reduction_vs_winograd": 1.0, "seconds": 100.4},
    {"stage": "step1", "kind": "prune", "step": "target 0.50", "accuracy": 0.88, "spatial_sparsity": 0.3,
     "winograd_sparsity": 0.5, "reduction_vs_direct": 6.6, "reduction_vs_winograd": 2.0, "target": 0.5,
     "seconds": 20.0},
    {"stage": "bench", "kind": "benchmark", "step": "batch 64", "dense_ms": 10.0, "compiled_ms": 4.0,
     "speedup_vs_dense": 2.5, "batch_size": 64, "threads": 2, "seconds": 3.0},
]
PNG = b"\x89PNG\r\n\x1a\n"


def test_headline_and_tables():
    numbers = headline(ROWS)
    assert numbers["baseline_accuracy"] == 0.9 and numbers["final_accuracy"] == 0.88
    assert numbers["winograd_sparsity"] == 0.5 and numbers["speedup_vs_dense"] == 2.5
    table = rows_to_markdown(ROWS)
    assert table.splitlines()[0].startswith("| stage | kind | step | accuracy | spatial sparsity")
    assert "| step1 | prune | target 0.50 | 88.00% | 30.0% | 50.0% | 6.60x | 2.00x | - | 20 |" in table
    assert "2.50x" in table
    parsed = list(csv.DictReader(io.StringIO(rows_to_csv(ROWS))))
    assert parsed[1]["target"] == "0.5" and parsed[2]["dense_ms"] == "10.0" and parsed[0]["target"] == ""
    assert format_value(None, "pct1") == "-" and format_value(float("nan"), "x") == "-"
    assert rows_to_markdown([{"stage": "a", "accuracy": None}]).splitlines()[0] == "| stage |"


def test_write_report_with_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("small_vgg", in_channels=1, widths=[4, "M", 8])
    prune_model(model, "spatial_winograd", 0.5, tile=4)
    convert(model, tile=4, domain="winograd")
    path = write_report(tmp_path / "report", ROWS, model=model, input_shape=(1, 1, 28, 28), title="t")
    text = path.read_text()
    assert text.startswith("# t") and "| 90.00% | 88.00% | 50.0% | 6.60x | 2.00x | 2.50x |" in text
    assert "batch of 64 with 2 thread(s)" in text and "features.4" in text
    for name in ("accuracy_vs_sparsity.png", "layer_sparsity.png", "position_sparsity.png"):
        assert (tmp_path / "report" / name).read_bytes()[:8] == PNG
        assert f"]({name})" in text
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert saved["rows"] == ROWS and saved["headline"]["baseline_accuracy"] == 0.9
    layers = json.loads((tmp_path / "report" / "layers.json").read_text())
    assert [l["name"] for l in layers["layers"]] == ["features.0", "features.4"]


def test_write_report_without_model_or_plots(tmp_path):
    path = write_report(tmp_path, ROWS[:1], plots=False)
    assert "Final model" not in path.read_text() and not list(tmp_path.glob("*.png"))
    assert (tmp_path / "results.csv").is_file()
