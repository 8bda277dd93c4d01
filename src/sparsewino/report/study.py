"""The combined report of a study: every step of every run, mean ± std over seeds, plots with bands.

Files written to ``<study dir>/report/``:

* ``steps.csv`` / ``steps.json``: every row of every run (``results.json`` of each run directory)
  with the study columns ``cell``, ``method``, ``seed`` and the cell's grid values in front;
* ``runs.csv``: one line per run: status and time (seconds summed over its steps, resumed
  steps included at the time they took);
* ``summary.md``: the final model of each cell (accuracy, its change against the baseline of
  the same seed, Winograd-domain sparsity, multiplication reduction, compiled speed-up, time per
  run: mean ± std over seeds), each cell's curve step by step, and the runs;
* ``accuracy_vs_sparsity.png``, ``accuracy_vs_multiplications.png``, ``speedup.png``: one line
  per cell through the mean of its steps, a band of ± one standard deviation over seeds.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..files import write_text_atomic
from .plots import pyplot
from .tables import rows_to_csv

__all__ = ["write_study_report", "collect_rows", "aggregate", "mean_std", "final_row", "curve_rows",
           "at_equal_accuracy", "LOSS_BUDGETS"]

#: Accuracy losses (fractions) of the "at equal accuracy" table.
LOSS_BUDGETS = (0.005, 0.01, 0.02)

#: Row kinds that make a cell's curve (one point per pruning target or fine-tune).
CURVE_KINDS = ("prune", "finetune")


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, sample standard deviation (0 for one value) and count of the numbers given.

    Examples:
        >>> [round(x, 4) for x in mean_std([0.5, 0.7, None])]
        [0.6, 0.1414, 2]
    """
    numbers = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not numbers:
        return None, None, 0
    return (statistics.fmean(numbers), statistics.stdev(numbers) if len(numbers) > 1 else 0.0,
            len(numbers))


def _read_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "results.json"
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text())
    except ValueError:
        return []
    return rows if isinstance(rows, list) else []


def collect_rows(study: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(every step row of every run with study columns, one row per run with status and time)."""
    steps, runs = [], []
    for run in study.runs:
        rows = _read_rows(run.run_dir)
        front = {"cell": run.cell, "method": run.method, "seed": run.seed, **run.params}
        for index, row in enumerate(rows):
            steps.append({**front, "index": index, **row})
        runs.append({**front, "status": run.status(), "steps": len(rows),
                     "seconds": round(sum(r.get("seconds") or 0 for r in rows), 1)})
    return steps, runs


def final_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """A run's final model: its last row with an accuracy, plus its compiled speed-up."""
    scored = [r for r in rows if r.get("accuracy") is not None]
    if not scored:
        return None
    final = dict(scored[-1])
    bench = [r for r in rows if r.get("speedup_vs_dense") is not None]
    if bench:
        for key in ("speedup_vs_dense", "speedup_low", "speedup_high", "machine_busy", "compiled_ms",
                    "dense_ms"):
            final[key] = bench[-1].get(key)
    return final


def curve_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a run's curve: each pruning target / fine-tune with accuracy and sparsity."""
    return [r for r in rows if r.get("kind") in CURVE_KINDS and r.get("accuracy") is not None
            and r.get("winograd_sparsity") is not None]


def _by_run(steps: Sequence[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in steps:
        out.setdefault((row["cell"], row["seed"]), []).append(row)
    return out


def aggregate(study: Any, steps: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(final numbers per cell, curve points per cell) as mean/std over the seeds that have them.

    Accuracy changes are paired: each seed's final accuracy minus the baseline of that seed.
    """
    runs = _by_run(steps)
    baseline = {seed: final_row(rows) for (cell, seed), rows in runs.items() if cell == "baseline"}
    cells = list(dict.fromkeys(run.cell for run in study.runs))
    methods = {run.cell: run.method for run in study.runs}
    finals, curves = [], []
    for cell in cells:
        seeds = sorted(seed for (c, seed) in runs if c == cell)
        finished = [seed for seed in seeds
                    if next(r for r in study.runs if r.cell == cell and r.seed == seed).status() == "finished"]
        last = {seed: final_row(runs[(cell, seed)]) for seed in finished}
        last = {seed: row for seed, row in last.items() if row is not None}
        entry: dict[str, Any] = {"cell": cell, "method": methods[cell], "runs": len(last),
                                 "of": sum(1 for r in study.runs if r.cell == cell)}
        for key in ("accuracy", "winograd_sparsity", "spatial_sparsity", "reduction_vs_direct",
                    "reduction_vs_winograd", "reduction_dynamic", "speedup_vs_dense"):
            entry[key], entry[key + "_std"], _ = mean_std(row.get(key) for row in last.values())
        deltas = [row["accuracy"] - baseline[seed]["accuracy"] for seed, row in last.items()
                  if cell != "baseline" and baseline.get(seed) is not None]
        entry["delta"], entry["delta_std"], _ = mean_std(deltas)
        entry["seconds"], entry["seconds_std"], _ = mean_std(
            sum(r.get("seconds") or 0 for r in runs[(cell, seed)]) for seed in last)
        entry["busy"] = any(row.get("machine_busy") for row in last.values())
        finals.append(entry)
        if cell == "baseline":
            continue
        per_seed = {seed: curve_rows(runs[(cell, seed)]) for seed in seeds}
        labels = list(dict.fromkeys((r["stage"], r.get("step", "")) for rows in per_seed.values()
                                    for r in rows))
        for stage, step in labels:
            found = {seed: next((r for r in rows if (r["stage"], r.get("step", "")) == (stage, step)),
                                None) for seed, rows in per_seed.items()}
            points = [p for p in found.values() if p is not None]
            point: dict[str, Any] = {"cell": cell, "method": methods[cell], "stage": stage, "step": step,
                                     "runs": len(points)}
            for key in ("accuracy", "winograd_sparsity", "spatial_sparsity", "reduction_vs_direct"):
                point[key], point[key + "_std"], _ = mean_std(p.get(key) for p in points)
            # paired with the same seed's baseline, like the finals' delta
            point["delta"], point["delta_std"], _ = mean_std(
                p["accuracy"] - baseline[seed]["accuracy"] for seed, p in found.items()
                if p is not None and p.get("accuracy") is not None and baseline.get(seed) is not None)
            curves.append(point)
    return finals, curves


def at_equal_accuracy(finals: Sequence[dict[str, Any]], curves: Sequence[dict[str, Any]],
                      budgets: Sequence[float] = LOSS_BUDGETS) -> list[dict[str, Any]]:
    """Per cell, the highest mean Winograd-domain sparsity among its curve points that lose at
    most ``budget`` accuracy against the baseline: the mean paired change (``delta``: each seed
    against its own baseline) when the points have one, else the mean accuracy against the
    baseline's mean. ``None`` where no point qualifies.

    Examples:
        >>> finals = [{"cell": "baseline", "accuracy": 0.90}]
        >>> curves = [{"cell": "a", "method": "A", "step": "t", "accuracy": 0.896, "winograd_sparsity": 0.5},
        ...           {"cell": "a", "method": "A", "step": "u", "accuracy": 0.88, "winograd_sparsity": 0.7}]
        >>> [(r["budget"], r["winograd_sparsity"]) for r in at_equal_accuracy(finals, curves, (0.005, 0.02))]
        [(0.005, 0.5), (0.02, 0.7)]
        >>> paired = [dict(curves[1], delta=-0.004)]     # its own seeds' baseline was 0.884
        >>> [r["winograd_sparsity"] for r in at_equal_accuracy(finals, paired, (0.005,))]
        [0.7]
    """
    base = next((f["accuracy"] for f in finals if f["cell"] == "baseline"), None)
    if base is None:
        return []

    def loss(point: dict[str, Any]) -> float:
        if point.get("delta") is not None:
            return -point["delta"]
        return base - point["accuracy"]

    out = []
    for cell in dict.fromkeys(c["cell"] for c in curves):
        points = [c for c in curves if c["cell"] == cell and c.get("accuracy") is not None
                  and c.get("winograd_sparsity") is not None]
        for budget in budgets:
            ok = [c for c in points if loss(c) <= budget + 1e-12]
            best = max(ok, key=lambda c: c["winograd_sparsity"], default=None)
            out.append({"cell": cell, "method": points[0]["method"] if points else cell, "budget": budget,
                        "winograd_sparsity": best["winograd_sparsity"] if best else None,
                        "accuracy": best["accuracy"] if best else None,
                        "step": f"{best.get('stage', '')} {best['step']}".strip() if best else None})
    return out


def _pm(value: float | None, std: float | None, style: str) -> str:
    if value is None:
        return "-"
    if style == "pct":
        return f"{100 * value:.2f} ± {100 * (std or 0):.2f}"
    if style == "pts":
        return f"{100 * value:+.2f} ± {100 * (std or 0):.2f}"
    if style == "x":
        return f"{value:.2f} ± {std or 0:.2f}"
    return f"{value / 60:.1f} ± {(std or 0) / 60:.1f}"


def _markdown(study: Any, finals: Sequence[dict[str, Any]], curves: Sequence[dict[str, Any]],
              runs: Sequence[dict[str, Any]]) -> str:
    lines = [f"# Study `{study.name}`", ""]
    if study.description:
        lines += [" ".join(study.description.split()), ""]
    done = sum(1 for r in runs if r["status"] == "finished")
    lines += [f"Seeds {study.seeds}; {done} of {len(runs)} runs finished. Mean ± standard deviation "
              "over the seeds whose run finished (`runs` column); the change in accuracy is paired "
              "with the baseline of the same seed. Percentages are of the test set; sparsity is "
              "the Winograd-domain sparsity of the convolutions weighted by multiplications; "
              "reductions count the element-wise multiplications against direct convolution; the "
              "speed-up is the compiled engine against the dense PyTorch model.", "",
              "## Final models", "",
              "| cell | method | runs | accuracy % | Δ vs baseline (points) | Winograd sparsity % "
              "| mult. reduction vs direct | with activation sparsity | compiled speed-up "
              "| minutes per run |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for f in finals:
        speed = _pm(f["speedup_vs_dense"], f["speedup_vs_dense_std"], "x") + (" (busy)" if f["busy"] else "")
        lines.append(f"| {f['cell']} | {f['method']} | {f['runs']}/{f['of']} | "
                     f"{_pm(f['accuracy'], f['accuracy_std'], 'pct')} | "
                     f"{_pm(f['delta'], f['delta_std'], 'pts')} | "
                     f"{_pm(f['winograd_sparsity'], f['winograd_sparsity_std'], 'pct')} | "
                     f"{_pm(f['reduction_vs_direct'], f['reduction_vs_direct_std'], 'x')} | "
                     f"{_pm(f['reduction_dynamic'], f['reduction_dynamic_std'], 'x')} | {speed} | "
                     f"{_pm(f['seconds'], f['seconds_std'], 'min')} |")
    lines.append("")
    if any(f["busy"] for f in finals):
        lines += ["(busy): the machine was busy during a benchmark (timings spread by more than "
                  "20 %).", ""]
    equal = at_equal_accuracy(finals, curves)
    if equal:
        budgets = list(dict.fromkeys(e["budget"] for e in equal))
        lines += ["## At equal accuracy", "",
                  "Highest Winograd-domain sparsity (mean over seeds) among each cell's pruning steps "
                  "whose mean accuracy change against the same seeds' baselines is at most this "
                  "many points down:", "",
                  "| cell | " + " | ".join(f"≤ {100 * b:.1f} points lost" for b in budgets) + " |",
                  "|---|" + "---:|" * len(budgets)]
        for cell in dict.fromkeys(e["cell"] for e in equal):
            cells = {e["budget"]: e for e in equal if e["cell"] == cell}
            lines.append(f"| {cell} | " + " | ".join(
                "-" if cells[b]["winograd_sparsity"] is None else
                f"{100 * cells[b]['winograd_sparsity']:.1f} % ({cells[b]['step']})" for b in budgets) + " |")
        lines.append("")
    lines += ["## Curves: every pruning step", "",
              "| cell | stage | step | runs | accuracy % | Winograd sparsity % | spatial sparsity % "
              "| mult. reduction |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for c in curves:
        lines.append(f"| {c['cell']} | {c['stage']} | {c['step']} | {c['runs']} | "
                     f"{_pm(c['accuracy'], c['accuracy_std'], 'pct')} | "
                     f"{_pm(c['winograd_sparsity'], c['winograd_sparsity_std'], 'pct')} | "
                     f"{_pm(c['spatial_sparsity'], c['spatial_sparsity_std'], 'pct')} | "
                     f"{_pm(c['reduction_vs_direct'], c['reduction_vs_direct_std'], 'x')} |")
    lines += ["", "## Runs", "", "| run | status | steps | minutes |", "|---|---|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['cell']} seed {r['seed']} | {r['status']} | {r['steps']} | "
                     f"{r['seconds'] / 60:.1f} |")
    lines += ["", "Files: `steps.csv`/`steps.json` (every step of every run), `runs.csv`, "
              "`accuracy_vs_sparsity.png`, `accuracy_vs_multiplications.png`, `speedup.png`.", ""]
    return "\n".join(lines)


def _plot_curves(finals: Sequence[dict[str, Any]], curves: Sequence[dict[str, Any]], x_key: str,
                 x_label: str, path: Path, percent: bool) -> Path | None:
    cells = [f for f in finals if f["cell"] != "baseline"]
    if not any(c[x_key] is not None for c in curves):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.4, 5.0))
    colors = plt.get_cmap("tab10")
    scale = 100 if percent else 1
    base = next((f for f in finals if f["cell"] == "baseline"), None)
    if base is not None and base["accuracy"] is not None:
        y, s = 100 * base["accuracy"], 100 * (base["accuracy_std"] or 0)
        ax.axhline(y, color="black", lw=1, ls="--", label="baseline")
        ax.axhspan(y - s, y + s, color="black", alpha=0.08)
    for index, cell in enumerate(cells):
        points = [c for c in curves if c["cell"] == cell["cell"] and c[x_key] is not None
                  and c["accuracy"] is not None]
        if not points:
            continue
        points.sort(key=lambda c: c[x_key])
        xs = [scale * c[x_key] for c in points]
        ys = [100 * c["accuracy"] for c in points]
        sd = [100 * (c["accuracy_std"] or 0) for c in points]
        color = colors(index % 10)
        ax.plot(xs, ys, "-o", ms=3.5, color=color, label=f"{cell['method']}", lw=1.3)
        ax.fill_between(xs, [a - b for a, b in zip(ys, sd)], [a + b for a, b in zip(ys, sd)],
                        color=color, alpha=0.18, lw=0)
    ax.set_xlabel(x_label)
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_speedup(finals: Sequence[dict[str, Any]], path: Path) -> Path | None:
    cells = [f for f in finals if f["speedup_vs_dense"] is not None]
    if not cells:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(cells) + 2), 4.2))
    xs = range(len(cells))
    ax.bar(xs, [f["speedup_vs_dense"] for f in cells], yerr=[f["speedup_vs_dense_std"] or 0 for f in cells],
           color="tab:green", capsize=3)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f["cell"] for f in cells], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("compiled engine vs dense PyTorch (x)")
    ax.set_title("Measured speed-up of the final models (mean ± std over seeds)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_study_report(study: Any, out_dir: str | Path, plots: bool = True) -> Path:
    """Write the combined report of ``study`` (a :class:`~sparsewino.recipes.study.Study`).

    Runs that have not finished contribute their finished steps to ``steps.csv`` but not to
    the mean ± std tables; the summary says how many runs each number rests on.

    Returns:
        The path of ``summary.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps, runs = collect_rows(study)
    finals, curves = aggregate(study, steps)
    grid_keys = list(dict.fromkeys(k for run in study.runs for k in run.params))
    front = ["cell", "method", "seed", *grid_keys, "index"]
    write_text_atomic(out / "steps.csv", rows_to_csv(steps, leading=front))
    write_text_atomic(out / "steps.json", json.dumps({"study": study.name, "seeds": study.seeds,
                                                      "rows": steps}, indent=1, default=str))
    write_text_atomic(out / "runs.csv", rows_to_csv(runs, leading=["cell", "method", "seed", *grid_keys,
                                                                   "status", "steps", "seconds"]))
    write_text_atomic(out / "summary.json", json.dumps({"finals": finals, "curves": curves,
                                                        "equal_accuracy": at_equal_accuracy(finals, curves)},
                                                       indent=1))
    if plots:
        _plot_curves(finals, curves, "winograd_sparsity", "Winograd-domain sparsity (%)",
                     out / "accuracy_vs_sparsity.png", True)
        _plot_curves(finals, curves, "reduction_vs_direct",
                     "multiplication reduction vs direct convolution (x)",
                     out / "accuracy_vs_multiplications.png", False)
        _plot_speedup(finals, out / "speedup.png")
    path = out / "summary.md"
    write_text_atomic(path, _markdown(study, finals, curves, runs))
    return path
