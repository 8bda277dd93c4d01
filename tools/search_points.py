"""Search accurate interpolation points for F(m, r) (the source of points.CURATED_POINTS).

Local search over small rationals: start from the best of the known sets (naive integers,
Barabasz et al.'s published sets), repeatedly replace one point by a candidate when that
lowers the measured fp32 error (sparsewino.winograd.measure_error, 2-D, fixed seed), until
no single replacement helps. Prints a Python dict literal to paste into points.py.

    python tools/search_points.py --max-n 10 --samples 4000
"""
from __future__ import annotations

import argparse
import itertools
from fractions import Fraction

import torch

from sparsewino.winograd import measure_error, naive_points

CANDIDATES = sorted({Fraction(s * a, b) for s in (1, -1) for a, b in
                     [(0, 1), (1, 1), (2, 1), (1, 2), (3, 1), (1, 3), (3, 2), (2, 3), (4, 1),
                      (1, 4), (3, 4), (4, 3), (5, 2), (2, 5), (5, 4), (4, 5), (1, 8), (8, 1)]})

PUBLISHED = {  # Barabasz et al. (docs/winograd.md, "published")
    (4, 3): [0, Fraction(-1, 2), -1, 1, 2],
    (6, 3): [0, Fraction(1, 2), Fraction(-1, 2), 1, -1, 2, -2],
    (8, 3): [0, Fraction(-1, 4), Fraction(1, 2), Fraction(-1, 2), 1, -1, 2, -2, 4],
}


def error(m: int, r: int, pts, samples: int) -> float:
    try:
        return measure_error(m, r, points=pts, samples=samples, seed=1)
    except (ValueError, ArithmeticError):
        return float("inf")


def search(m: int, r: int, samples: int) -> tuple[list[Fraction], float]:
    count = m + r - 2
    starts = [list(naive_points(count))]
    if (m, r) in PUBLISHED:
        starts.append([Fraction(p) for p in PUBLISHED[(m, r)]])
    # nested symmetric start: 0, ±1/2, ±1, ±2, ... truncated
    sym = [Fraction(0)] + list(itertools.chain.from_iterable(
        (Fraction(v), Fraction(-v)) for v in (Fraction(1, 2), 1, 2, Fraction(1, 4), 4, Fraction(3, 2), Fraction(2, 3))))
    starts.append(sym[:count])
    best, best_err = None, float("inf")
    for start in starts:
        e = error(m, r, start, samples)
        if e < best_err:
            best, best_err = list(start), e
    improved = True
    while improved:
        improved = False
        for i in range(count):
            for cand in CANDIDATES:
                if cand in best:
                    continue
                trial = best[:i] + [cand] + best[i + 1:]
                e = error(m, r, trial, samples)
                if e < best_err * 0.995:
                    best, best_err, improved = trial, e, True
    return sorted(best, key=lambda p: (abs(p), p < 0)), best_err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-n", type=int, default=10)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for r in range(2, 8):
        for m in range(2, args.max_n - r + 2):
            pts, err = search(m, r, args.samples)
            naive = error(m, r, naive_points(m + r - 2), args.samples)
            text = ", ".join(f"F({p.numerator}, {p.denominator})" if p.denominator != 1
                             else str(p.numerator) for p in pts)
            print(f"    ({m}, {r}): ({text},),  # {err:.3g} (naive {naive:.3g})", flush=True)


if __name__ == "__main__":
    main()
