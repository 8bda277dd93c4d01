"""The AdderNet comparison (benchmarks/adder_fashion_mnist.py) end to end on generated data (seconds)."""
import csv
import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "adder_fashion_mnist.py"
_spec = importlib.util.spec_from_file_location("adder_fashion_mnist", SCRIPT)
recipe = sys.modules.setdefault("adder_fashion_mnist", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(recipe)          # registered first: its dataclasses look their module up


def test_comparison_writes_one_row_per_model(tmp_path):
    rows = recipe.run(tmp_path, epochs=1, batch_size=32, train_limit=64, test_limit=32,
                      dataset="fake", data_options={"num_samples": 96})
    assert [r["model"] for r in rows] == [s.name for s in recipe.COMPARISON]
    with open(tmp_path / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [r["model"] for r in table] == [r["model"] for r in rows]
    by_name = {r["model"]: r for r in rows}
    assert by_name["cnn"]["body_multiplications"] > 0
    assert all(by_name[n]["body_multiplications"] == 0 for n in by_name if n != "cnn")
    assert by_name["winograd_adder_standard"]["body_additions"] < by_name["addernet"]["body_additions"]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    text = (tmp_path / "results.md").read_text()
    assert "balanced transforms + l2-to-l1" in text and "0.9 pJ" in text
    again = recipe.run(tmp_path, epochs=1, batch_size=32, train_limit=64, test_limit=32,
                       dataset="fake", data_options={"num_samples": 96}, models=["addernet"])
    assert again[0]["accuracy"] == by_name["addernet"]["accuracy"]     # reused checkpoint
