"""Before/after table of sparsewino's times from ``peers.py --json`` files (two builds, same machine).

For every case and sparsity: the lower of each side's runs in ms, and the speed-up over torch
measured in the same run (drift-free: the machine's load changes both). The closing lines give
the medians and how many cells got slower by more than 5 %.

    python benchmarks/peers.py --layers --models --json before1.json     # old build, twice
    python benchmarks/peers.py --layers --models --json after1.json      # new build, twice
    python benchmarks/compare_runs.py --before before1.json before2.json --after after1.json after2.json
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def load(paths: list[Path]) -> list[dict]:
    """The ``results`` of each ``peers.py --json`` file."""
    return [json.loads(path.read_text())["results"] for path in paths]


def cells(runs: list[dict]) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(table, case, sparsewino column) -> (lowest ms, highest speed-up over torch)."""
    out = {}
    for table, cases in runs[0].items():
        for case, entry in cases.items():
            for column in entry["ms"]:
                if column.startswith("sparsewino"):
                    times = [run[table][case]["ms"] for run in runs]
                    out[(table, case, column)] = (min(t[column] for t in times),
                                                  max(t["torch"] / t[column] for t in times))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, nargs="+", required=True)
    parser.add_argument("--after", type=Path, nargs="+", required=True)
    args = parser.parse_args()
    before, after = cells(load(args.before)), cells(load(args.after))
    print("| case | sparsity | before ms | after ms | before vs torch | after vs torch | "
          "after/before (vs torch) |")
    print("|---|---|---|---|---|---|---|")
    relative, absolute = [], []
    for key in before:
        if key not in after:
            continue
        (b_ms, b_speed), (a_ms, a_speed) = before[key], after[key]
        relative.append(a_speed / b_speed)
        absolute.append(b_ms / a_ms)
        print(f"| {key[1]} | {key[2].split('@')[1]} | {b_ms:.3g} | {a_ms:.3g} | {b_speed:.2f}x | "
              f"{a_speed:.2f}x | {a_speed / b_speed:.2f} |")
    print(f"| **median** | | | | | | **{statistics.median(relative):.3f}** |")
    print(f"\nbefore ms / after ms: median {statistics.median(absolute):.3f} (min "
          f"{min(absolute):.3f}, max {max(absolute):.3f}); after slower by more than 5 % in "
          f"{sum(r < 0.95 for r in absolute)} of {len(absolute)} cells")


if __name__ == "__main__":
    main()
