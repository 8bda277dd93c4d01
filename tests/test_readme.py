"""The README's quickstart runs as written and prints what it says; its data tables match the data files."""
import contextlib
import io
import json
import re
import statistics
from pathlib import Path

#: "~X" in a README expectation: the printed number lies within this factor of X either way
#: (fp32 rounding errors vary with the CPU's kernels and thread count, not by orders of magnitude).
APPROXIMATE_FACTOR = 5.0

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_quickstart():
    assert python_blocks(), "README.md lost its ```python quickstart block"


def test_readme_states_expected_outputs():
    expected = re.findall(r"#\s*->", "".join(python_blocks()))
    assert len(expected) >= 5


def test_readme_approximate_expectations_are_checked():
    approximate = re.findall(r"#\s*->\s*~(\S+)", "".join(python_blocks()))
    assert len(approximate) >= 2 and all(float(v) > 0 for v in approximate)


def test_readme_python_blocks_run_as_written(monkeypatch):
    monkeypatch.delenv("SPARSEWINO_ENGINE_BACKEND", raising=False)   # as a user runs them
    for block in python_blocks():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
        printed = out.getvalue().splitlines()
        # every "print(...)  # -> expected" comment must match a printed line, in order;
        # "~X" marks an approximate number: the line the print makes holds a value close to X
        expectations = re.findall(r"^\s*print\((f?\"[^\"{]*)?.*\)\s*#\s*->\s*(.+)$", block, flags=re.M)
        remaining = [line.strip() for line in printed]
        for start, expected in expectations:
            expected = expected.strip()
            if expected.startswith("~"):
                prefix = start.lstrip("f").lstrip('"')
                line = next((l for l in remaining if l.startswith(prefix)), None)
                assert line is not None, (prefix, printed)
                value, stated = float(re.findall(r"[-+0-9.e]+", line)[-1]), float(expected[1:])
                assert stated / APPROXIMATE_FACTOR <= value <= stated * APPROXIMATE_FACTOR, (line, expected)
                remaining = remaining[remaining.index(line) + 1:]
                continue
            assert expected in remaining, (expected, printed)
            remaining = remaining[remaining.index(expected) + 1:]


def test_readme_says_where_the_command_is_and_what_it_needs():
    text = README.read_text()
    assert ".venv/bin/sparsewino" in text and "source .venv/bin/activate" in text
    assert 'pip install ".[pipeline]"' in text


# ------------------------------------------------------------- README tables backed by data files
#: A README table preceded by ``<!-- data: PATH -->`` states numbers of that committed study
#: summary (``summary.json`` of ``sparsewino study --report``, copied under docs/data/).
_DATA_TABLE = re.compile(r"<!-- data: (?P<path>\S+) -->\n(?P<table>(?:\|.*\|\n)+)")


def data_tables() -> list[tuple[Path, list[list[str]]]]:
    """``(data file, body rows as lists of cells)`` of every data-backed README table."""
    tables = []
    for match in _DATA_TABLE.finditer(README.read_text()):
        lines = match.group("table").strip().splitlines()[2:]          # no header, no rule
        rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
        tables.append((README.parent / match.group("path"), rows))
    return tables


def _mean_std(value: float | None, std: float | None, scale: float = 100.0, signed: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value * scale:+.2f}" if signed else f"{value * scale:.2f}"
    return f"{text} ± {(std or 0.0) * scale:.2f}"


def expected_row(summary: dict, cell: str, step: str) -> list[str]:
    """The row a README data table must show for ``cell`` at ``step`` (``final`` for the final
    model): seeds, Winograd sparsity %, accuracy % and change vs the same seeds' baselines."""
    if step == "final":
        found = [r for r in summary["finals"] if r["cell"] == cell]
    else:
        found = [r for r in summary["curves"] if r["cell"] == cell and f"{r['stage']} {r['step']}" == step]
    assert len(found) == 1, f"README data table: no single row for {cell!r} / {step!r} in the data file"
    row = found[0]
    return [cell, step, str(row["runs"]), _mean_std(row["winograd_sparsity"], row["winograd_sparsity_std"]),
            _mean_std(row["accuracy"], row["accuracy_std"]),
            _mean_std(row["delta"], row["delta_std"], signed=True)]


def test_readme_result_tables_match_the_committed_data():
    tables = data_tables()
    assert tables, "README.md lost its data-backed result table(s)"
    for path, rows in tables:
        summary = json.loads(path.read_text())
        assert rows
        for row in rows:
            assert row == expected_row(summary, row[0], row[1]), (path, row)


def test_a_changed_number_in_a_data_table_is_caught():
    path, rows = data_tables()[0]
    summary = json.loads(path.read_text())
    row = list(rows[0])
    accuracy = float(row[4].split()[0])
    row[4] = f"{accuracy + 0.01:.2f} ± {row[4].split()[-1]}"
    assert row != expected_row(summary, row[0], row[1])


# -------------------------------------------------------------- the demo table, backed by a run
#: The README's demo table follows ``<!-- run data: PATH -->``: ``report/results.json`` of a
#: ``sparsewino run`` of the demo recipe (``sparsewino.demo.RECIPE``), copied under docs/data/.
_RUN_TABLE = re.compile(r"<!-- run data: (?P<path>\S+) -->\n(?P<table>(?:\|.*\|\n)+)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _demo_values(data: dict) -> dict[str, list[str]]:
    """Row label (its start) -> the numbers its value cell must show, in order."""
    head, rows = data["headline"], data["rows"]
    after = {}                      # "after STAGE": accuracy, Winograd sparsity, spatial if any
    for row in rows:
        if row["kind"] == "prune":
            after[f"after {row['stage']} "] = [
                f"{row['accuracy'] * 100:.2f}", f"{row['winograd_sparsity'] * 100:.1f}",
                *([f"{row['spatial_sparsity'] * 100:.1f}"] if row.get("spatial_sparsity") else [])]
    return {
        "baseline accuracy": [f"{head['baseline_accuracy'] * 100:.2f}"],
        **after,
        "final accuracy": [f"{head['final_accuracy'] * 100:.2f}"],
        "Winograd-domain sparsity": [f"{head['winograd_sparsity'] * 100:.1f}"],
        "multiplication reduction": [f"{head['reduction_vs_direct']:.2f}", f"{head['reduction_vs_winograd']:.2f}"],
        "compiled engine vs dense PyTorch model": [
            f"{head['speedup_vs_dense']:.2f}", f"{head['dense_ms']:.2f}", f"{head['compiled_ms']:.2f}",
            str(head["benchmark_batch"]), str(head["benchmark_threads"])],
        "time in the pipeline": [f"{sum(r['seconds'] for r in rows):.0f}"],
    }


def demo_table() -> tuple[Path, list[list[str]]]:
    """The README demo table's data file and its body rows (label, value)."""
    match = _RUN_TABLE.search(README.read_text())
    assert match, "README.md lost the demo table backed by run data"
    lines = match.group("table").strip().splitlines()[2:]
    return (README.parent / match.group("path"),
            [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines])


def test_readme_demo_table_matches_the_committed_run():
    path, rows = demo_table()
    data = json.loads(path.read_text())
    expected = _demo_values(data)
    assert data["headline"]["final_compiled_accuracy"] == data["headline"]["final_accuracy"]
    labels = []
    for label, value in rows:
        key = next((k for k in expected if label.startswith(k)), None)
        assert key is not None, f"README demo table row {label!r} is not backed by {path.name}"
        assert _NUMBER.findall(value) == expected[key], (label, value, expected[key])
        labels.append(key)
    assert sorted(labels) == sorted(expected)                  # every backed row is shown once


# ------------------------------------------------------- the held-out data table, backed by runs
#: ``<!-- heldout data: DIR -->``: each row's first cell names ``DIR/<run>.json`` written by
#: ``benchmarks/heldout_mnist.py --json``; stage and step pick its summary row.
_HELDOUT_TABLE = re.compile(r"<!-- heldout data: (?P<path>\S+) -->\n(?P<table>(?:\|.*\|\n)+)")


def test_readme_heldout_table_matches_the_committed_runs():
    match = _HELDOUT_TABLE.search(README.read_text())
    assert match, "README.md lost the held-out data table"
    lines = match.group("table").strip().splitlines()[2:]
    assert len(lines) >= 3
    for line in lines:
        run, stage, step, sparsity, delta = [c.strip() for c in line.strip().strip("|").split("|")]
        data = json.loads((README.parent / match.group("path") / f"{run}.json").read_text())
        row = next(r for r in data["summary"] if r["stage"] == stage and r["step"] == step)
        assert len(data["seeds"]) == 3 and row["seeds"] == 3, (run, stage)
        assert sparsity == f"{100 * row['winograd_sparsity']:.1f}", (line, row)
        assert delta == f"{100 * row['delta']:+.2f} ± {100 * row['delta_std']:.2f}", (line, row)


def test_readme_heldout_paired_gaps_match_the_committed_runs():
    """The prose's "loses 0.20 and 0.77 point against the same fine-tuning without pruning"."""
    folder = README.parent / "docs" / "data" / "heldout_mnist"
    ours, dense = (json.loads((folder / f"{name}.json").read_text()) for name in ("gd2", "dense_control"))
    assert ours["baselines"] == dense["baselines"]                  # same baseline per seed
    gaps = []
    for stage in ("step2a", "step2b"):
        a = next(r for r in ours["summary"] if r["stage"] == stage)["deltas"]
        b = next(r for r in dense["summary"] if r["stage"] == stage)["deltas"]
        gaps.append(f"{100 * (sum(b) - sum(a)) / len(a):.2f}")
    text = " ".join(README.read_text().split())
    assert f"it loses {gaps[0]} and {gaps[1]} point" in text
    base = [100 * b for b in ours["baselines"]]
    assert f"baseline {statistics.mean(base):.2f} ± {statistics.stdev(base):.2f} %" in text


# ------------------------------------------------------- algorithm errors, backed by a data file
_ERRORS = re.compile(r"<!-- errors: (?P<path>\S+) -->\n(?P<text>(?:[^\n]+\n)+)")
_ERROR_CLAIM = re.compile(r"F\((\d+),(\d+)\) (\S+e-\d+)(?: \((published|naive points:) (\S+e-\d+)\))?")


def test_readme_algorithm_errors_match_the_committed_measurement():
    match = _ERRORS.search(README.read_text())
    assert match, "README.md lost the data-backed algorithm errors"
    data = json.loads((README.parent / match.group("path")).read_text())
    by_tile = {(a["m"], a["r"]): a for a in data["algorithms"]}
    claims = _ERROR_CLAIM.findall(match.group("text"))
    assert len(claims) >= 4
    for m, r, error, kind, other in claims:
        row = by_tile[(int(m), int(r))]
        assert error == f"{row['error']:.1e}".replace("e-0", "e-"), (m, r, error, row["error"])
        if kind:
            value = row["published"] if kind == "published" else row["naive_error"]
            assert other == f"{value:.1e}".replace("e-0", "e-"), (m, r, kind, other, value)


# ------------------------------------------------ the cost of pruning in blocks, backed by a study
EQUAL = README.parent / "docs" / "data" / "fashion_mnist_equal" / "steps.csv"
_BLOCK_COST = re.compile(r"blocks of 8 loses (?P<costs>[\d.]+ / [\d.]+ / [\d.]+) points more")


def equal_finals() -> dict[tuple[str, str], dict]:
    """The committed equal-budget study's evaluated end of each run, by (cell, seed): the
    ``final`` stage of the cells, the ``baseline`` stage of the baselines."""
    import csv
    with EQUAL.open() as f:
        return {(row["cell"], row["seed"]): row for row in csv.DictReader(f)
                if row["accuracy"] and row["stage"] in ("final", "baseline")}


def block_costs(seed: int = 0) -> list[str]:
    """Points lost by step2_block8 beyond step2 at each target (0.6, 0.7, 0.8), one seed, from
    the committed runs of the equal-budget study."""
    final = {cell: float(row["accuracy"]) for (cell, s), row in equal_finals().items()
             if s == str(seed)}
    return [f"{100 * (final[f'step2.final-{t}'] - final[f'step2_block8.final-{t}']):.2f}"
            for t in ("0.6", "0.7", "0.8")]


def test_readme_block_cost_matches_the_study_runs():
    match = _BLOCK_COST.search(" ".join(README.read_text().split()))
    assert match, "README lost its sentence on what blocks cost"
    assert match.group("costs").split(" / ") == block_costs()


# ------------------------------ our recipe over three seeds (docs/results.md), backed by data
RESULTS = README.parent / "docs" / "results.md"
_OURS_ROW = re.compile(r"^\| (?P<sparsity>[\d.]+) % \| (?P<mean>[\d.]+) ± (?P<sd>[\d.]+) % \| "
                       r"(?P<delta>−?[\d.]+) ± (?P<dsd>[\d.]+) \|", re.M)


def ours_three_seeds() -> list[tuple[str, str, str, str, str]]:
    """Per target of the ``ours`` cell: Winograd sparsity (%), accuracy mean and sd (%), and the
    paired delta against each seed's own baseline, mean and sd (points), from steps.csv."""
    final, base, sparsity = {}, {}, {}
    for (cell, seed), row in equal_finals().items():
        if cell == "baseline":
            base[seed] = 100 * float(row["accuracy"])
        elif cell.startswith("ours."):
            final.setdefault(cell, {})[seed] = 100 * float(row["accuracy"])
            sparsity[cell] = 100 * float(row["winograd_sparsity"])
    rows = []
    for cell in sorted(final):
        seeds = sorted(final[cell])
        assert seeds == ["0", "1", "2"], (cell, seeds)
        accs = [final[cell][s] for s in seeds]
        deltas = [final[cell][s] - base[s] for s in seeds]
        rows.append((f"{sparsity[cell]:.1f}", f"{statistics.mean(accs):.2f}",
                     f"{statistics.stdev(accs):.2f}",
                     f"{statistics.mean(deltas):.2f}".replace("-", "−"),
                     f"{statistics.stdev(deltas):.2f}"))
    return rows


def test_results_our_recipe_table_matches_the_study_runs():
    """The three-seed table of our recipe in docs/results.md is what the committed runs give,
    each seed paired with its own baseline (not all with seed 0's)."""
    text = RESULTS.read_text()
    start = text.index("**Our recipe, three seeds**")
    shown = [m.groups() for m in _OURS_ROW.finditer(text[start:start + 2000])]
    assert shown == ours_three_seeds()
