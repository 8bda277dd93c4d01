"""Tiles per vector: 3x3 Winograd layers with 8 and 16 lanes, and the automatic choice.

Per layer (F(4,3), Winograd weights pruned at random to ``--sparsity``), the median ms of one
``SparseWinogradConv2d`` call with

* ``8``: every stage on 8 tiles per vector (``lanes=8``);
* ``16``: the element-wise stage and the 2-D transforms on 16 (``lanes=16``; the AVX-512
  build only);
* ``auto``: what the plan picks (``lanes=0``): 16 element-wise lanes on AVX-512, the
  transforms on 16 except on CPUs that split 512-bit operations (AMD Zen 4), where they stay 8.

The three run in alternating rounds in one process; the table gives the ratios of ``8`` and
``auto`` over ``16`` (above 1: 16 lanes are faster).

    python benchmarks/transform_lanes.py --threads 2 --json docs/data/performance/lanes.json
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_argument, prune_random, record_output  # noqa: E402

from sparsewino.engine import SparseWinogradConv2d, kernels  # noqa: E402
from sparsewino.nn import WinogradConv2d  # noqa: E402
from sparsewino.timing import cpu_flags, cpu_model, median_time  # noqa: E402

#: (batch, in channels, out channels, side): the demo model's layers at batch 1 and 64, and
#: VGG/ResNet layers at batch 1 and 8.
SHAPES = [(1, 16, 16, 28), (64, 16, 16, 28), (64, 32, 32, 14), (64, 32, 64, 7),
          (1, 64, 64, 56), (8, 64, 64, 56), (1, 128, 128, 28), (8, 128, 128, 28),
          (1, 256, 256, 14), (8, 256, 256, 14), (1, 512, 512, 7), (8, 512, 512, 7)]
SETTINGS = {"8": 8, "16": 16, "auto": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sparsity", type=float, default=0.7)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=30)
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    torch.set_num_threads(args.threads)
    if kernels.backend() != "avx512":
        raise SystemExit(f"the backend in use is {kernels.backend()!r}: 16 lanes need the "
                         "AVX-512 build on an AVX-512 CPU")
    print(f"CPU: {cpu_model()}; flags: {cpu_flags()}; threads {args.threads}; backend "
          f"{kernels.backend()}; {args.sparsity:.0%} random Winograd sparsity, F(4,3); "
          f"{args.rounds} alternating rounds x {args.runs} calls, median\n")
    print("| batch | C -> K | side | 8 lanes ms | 16 lanes ms | auto ms | 8 / 16 | auto / 16 |")
    print("|---|---|---|---|---|---|---|---|")
    for batch, c, k, side in SHAPES:
        torch.manual_seed(0)
        layer = WinogradConv2d(c, k, 3, padding=1, tile=4, domain="winograd").eval()
        with torch.no_grad():
            layer.weight.copy_(prune_random(layer.weight, args.sparsity, seed=0))
        fast = SparseWinogradConv2d.from_layer(layer, threads=args.threads)
        x = torch.randn(batch, c, side, side)
        times: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for _ in range(args.rounds):
            for name, lanes in SETTINGS.items():
                fast.lanes = lanes
                times[name].append(1e3 * median_time(lambda f=fast, x=x: f(x), 3, args.runs))
        ms = {name: statistics.median(values) for name, values in times.items()}
        print(f"| {batch} | {c} -> {k} | {side} | {ms['8']:.4f} | {ms['16']:.4f} | "
              f"{ms['auto']:.4f} | {ms['8'] / ms['16']:.3f} | {ms['auto'] / ms['16']:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
