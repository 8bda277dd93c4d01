"""Print the fp32 error table of Winograd algorithms (default vs naive points) as Markdown.

Error = mean absolute error per output of F(m x m, r x r) in float32 vs float64 direct
correlation, one channel, uniform(-1, 1) inputs and kernels (Barabasz et al.'s measure).

    python benchmarks/winograd_error.py [--samples 20000] [--json docs/data/winograd_error/results.json]

fp32 rounding depends on the CPU's matrix-product kernels (vector width, FMA): the JSON records
the CPU model and flags beside each error.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from common import run_record

from sparsewino.winograd import algorithm, measure_error, naive_points

CASES = [(m, 3) for m in range(2, 9)] + [(m, 5) for m in range(2, 5)] + [(2, 7)]
PUBLISHED = {(2, 3): 7.65e-8, (4, 3): 3.29e-7, (6, 3): 8.79e-7}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the errors here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"samples={args.samples} seed={args.seed} torch={torch.__version__}\n")
    print("| algorithm | n | default points | error (default) | error (naive 0, ±1, ±2, …) "
          "| naive / default | published |")
    print("|---|---|---|---|---|---|---|")
    direct = measure_error(1, 3, samples=args.samples, seed=args.seed)
    print(f"| direct 3×3 (fp32 reference) | 3 | – | {direct:.3g} | – | – | |")
    rows = []
    for m, r in CASES:
        alg = algorithm(m, r)
        default = measure_error(m, r, samples=args.samples, seed=args.seed)
        naive = measure_error(m, r, points=naive_points(m + r - 2), samples=args.samples,
                              seed=args.seed)
        pts = ", ".join(str(p) for p in alg.points) + ", ∞"
        published = PUBLISHED.get((m, r))
        print(f"| F({m},{r}) | {alg.n} | {pts} | {default:.3g} | {naive:.3g} | "
              f"{naive / default:.1f}× | {published if published else ''} |")
        rows.append({"m": m, "r": r, "points": [str(p) for p in alg.points], "error": default,
                     "naive_error": naive, "published": published})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**run_record(), "samples": args.samples, "seed": args.seed,
                                         "direct_error": direct, "algorithms": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
