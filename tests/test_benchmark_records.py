"""Benchmarks' ``--json``: the printed tables are written as data, with the conditions, and only
when the script succeeds."""
import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from common import markdown_tables  # noqa: E402


def test_markdown_tables_keep_captions_headers_and_cells():
    text = ("samples=10\n\n5×5, stride 1\n\n| a | b |\n|---|---:|\n| x | 1.5 |\n| y | 2 |\n"
            "not a table | here\n\nsecond\n| c |\n|:-:|\n| z |\n")
    assert markdown_tables(text) == [
        {"caption": "5×5, stride 1", "header": ["a", "b"], "rows": [["x", "1.5"], ["y", "2"]]},
        {"caption": "second", "header": ["c"], "rows": [["z"]]}]


def test_a_benchmark_writes_its_tables_and_conditions(tmp_path):
    out = tmp_path / "errors.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "dwm_error.py"), "--samples", "64",
                           "--no-summation", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, check=True)
    data = json.loads(out.read_text())
    assert data["output"] == done.stdout and data["cpu_flags"] and data["threads"] == 1
    assert data["command"].endswith("--json " + str(out))
    assert len(data["tables"]) >= 4 and all(t["rows"] for t in data["tables"])
    first = data["tables"][0]
    assert first["header"][0] == "algorithm" and first["rows"][0][0].startswith("direct")


def test_a_failed_benchmark_writes_nothing(tmp_path):
    out = tmp_path / "nothing.json"
    script = tmp_path / "fails.py"
    script.write_text("import sys\nsys.path.insert(0, %r)\nfrom common import record_output\n"
                      "from pathlib import Path\nrecord_output(Path(%r))\nprint('| a |')\n"
                      "print('|---|')\nraise SystemExit('broken') if False else 1 / 0\n"
                      % (str(BENCHMARKS), str(out)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and not out.exists() and "benchmark failed" in done.stderr
