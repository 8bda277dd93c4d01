"""The blocked format against SELL-4 on the same block-pruned weights, per backend and shape.

For 3x3 F(4x4, 3x3) layers whose Winograd weights are pruned in random blocks of 8 output
channels (what ``winograd_domain(block=8)`` gives), the same layer compiled with every matrix
``"sparse"`` (SELL-4) and every matrix ``"blocked"``, timed alternately (median of 3 rounds of
20 calls after warm-up) on each compiled backend this CPU runs. What ``choose_format``'s rule
(blocked where the blocks are full) rests on.

    python benchmarks/blocked_formats.py --threads 2 --json docs/data/engine_blocked/formats.json
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_argument, median_time, record_output, run_record  # noqa: E402
from engine import winograd_layer  # noqa: E402

from sparsewino import engine  # noqa: E402
from sparsewino.engine import kernels  # noqa: E402

SHAPES = [(1, 256, 256, 8), (1, 512, 512, 7), (1, 128, 128, 16), (1, 64, 64, 32),
          (8, 128, 128, 16), (8, 64, 64, 56)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.7, 0.9])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    torch.set_num_threads(args.threads)
    record = run_record()
    print(f"CPU: {record['cpu']} ({record['cpu_flags']}) | threads {args.threads} | "
          f"{args.rounds} rounds x {args.runs} calls (median)\n")
    print("| backend | (N, C, K, H) | sparsity | SELL-4 ms | blocked ms | blocked speed-up |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for backend in [b for b in kernels.available_backends() if b not in ("torch", "portable")]:
        with engine.use_backend(backend):
            for n, c, k, h in SHAPES:
                torch.manual_seed(0)
                w = torch.randn(k, c, 3, 3) / (3 * c ** 0.5)
                x = torch.randn(n, c, h, h)
                for s in args.sparsity:
                    layer = winograd_layer(w, s, blocks=True)
                    fast = {fmt: engine.compile(layer, formats=fmt) for fmt in ("sparse", "blocked")}
                    times: dict[str, list[float]] = {fmt: [] for fmt in fast}
                    with torch.no_grad():
                        for _ in range(args.rounds):
                            for fmt, m in fast.items():
                                times[fmt].append(median_time(lambda m=m, x=x: m(x), 3,
                                                              args.runs))
                    ms = {fmt: statistics.median(t) * 1e3 for fmt, t in times.items()}
                    ratios.append(ms["sparse"] / ms["blocked"])
                    print(f"| {backend} | {(n, c, k, h)} | {s:.0%} | {ms['sparse']:.3g} | "
                          f"{ms['blocked']:.3g} | {ratios[-1]:.2f}x |", flush=True)
    print(f"\nblocked over SELL-4: median {statistics.median(ratios):.2f}x, range "
          f"{min(ratios):.2f}-{max(ratios):.2f}x")


if __name__ == "__main__":
    main()
