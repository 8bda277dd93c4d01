"""3-D sparse Winograd engine vs torch's conv3d on C3D-like layers: dense, column and unstructured sparsity.

For 3x3x3 layers (padding 1) shaped like C3D's (Tran et al. 2015) at 8 frames of 56x56 and like
the small C3D of the bundled recipe, the ratio ``conv3d time / engine time`` (> 1: the engine is
faster) of:

* dense F(2,3)³ and F(4,3)³ layers (the Winograd weights of a random spatial kernel), and
  the same kernel compiled with ``engine.compile(layer, tune=x)`` (tile F(2,3)³/F(4,3)³/F(6,3)³
  and formats chosen by measurement at compile time, as users get it);
* F(4,3)³ with 75 % column sparsity: 162 of the 216 positions pruned whole (a column-pruned
  low-rank layer; the kernel skips those positions);
* F(4,3)³ with 75 % unstructured sparsity: 75 % of the Winograd weights zeroed at random (the
  magnitude-pruning baseline's pattern at the same sparsity).

conv3d and the engine variants run in turns (``sparsewino.timing.interleaved_times``), each
ratio is the median of the per-round ratios; the table ends with the median over shapes per
batch size and the issue's targets (>= 2x dense F(4,3)³, >= 5x at 75 % column sparsity).

    python benchmarks/engine3d.py                 # batch 1 and 4, 2 threads (a few minutes)
    python benchmarks/engine3d.py --quick         # 3 shapes, batch 1, fewer rounds
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_argument, conditions, record_output  # noqa: E402

from sparsewino import engine  # noqa: E402
from sparsewino.nn import WinogradConv3d  # noqa: E402
from sparsewino.timing import cpu_flags, interleaved_times  # noqa: E402
from sparsewino.winograd.transform import filter_transform  # noqa: E402

# (name, C, K, D, H): C3D at 8 frames of 56x56 (conv2..conv5), and the recipe's small C3D.
SHAPES = [
    ("C3D conv2", 64, 128, 8, 28), ("C3D conv3a", 128, 256, 4, 14),
    ("C3D conv3b", 256, 256, 4, 14), ("C3D conv4a", 256, 512, 2, 7),
    ("C3D conv4b", 512, 512, 2, 7),
    ("small C3D conv2", 8, 16, 16, 16), ("small C3D conv3", 16, 32, 8, 8),
]
VARIANTS = ("F(2,3)³ dense", "F(4,3)³ dense", "dense, tuned", "F(4,3)³ 75% columns",
            "F(4,3)³ 75% unstructured")
TARGETS = {"F(4,3)³ dense": 2.0, "F(4,3)³ 75% columns": 5.0}


def winograd_layer(spatial: torch.Tensor, tile: int, pattern: str, seed: int) -> WinogradConv3d:
    """A Winograd-domain layer of ``spatial``'s transform, pruned by ``pattern``."""
    k, c = spatial.shape[:2]
    layer = WinogradConv3d(c, k, 3, padding=1, tile=tile, domain="winograd", bias=False)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        q = filter_transform(spatial, layer.algorithms)
        positions = q[0, 0].numel()
        if pattern == "columns":
            keep = torch.zeros(positions)
            keep[torch.randperm(positions, generator=generator)[:positions // 4]] = 1
            q = q * keep.reshape(q.shape[2:])
        elif pattern == "unstructured":
            keep = torch.zeros(q.numel())
            keep[torch.randperm(q.numel(), generator=generator)[:q.numel() // 4]] = 1
            q = q * keep.reshape(q.shape)
        layer.weight.copy_(q)
    return layer.eval()


def measure(shape: tuple, batch: int, args: argparse.Namespace) -> dict:
    name, c, k, d, h = shape
    torch.manual_seed(c * 1000 + k)
    x = torch.randn(batch, c, d, h, h)
    spatial = torch.randn(k, c, 3, 3, 3) / (27 * c) ** 0.5
    layers = {"F(2,3)³ dense": winograd_layer(spatial, 2, "dense", 0),
              "F(4,3)³ dense": winograd_layer(spatial, 4, "dense", 0),
              "F(4,3)³ 75% columns": winograd_layer(spatial, 4, "columns", 1),
              "F(4,3)³ 75% unstructured": winograd_layer(spatial, 4, "unstructured", 2)}
    compiled = {variant: engine.compile(layer) for variant, layer in layers.items()}
    # what a user gets from compile(model, tune=x): tile and formats chosen by measurement
    plain = WinogradConv3d(c, k, 3, padding=1, bias=False).eval()
    with torch.no_grad():
        plain.weight.copy_(spatial)
    compiled["dense, tuned"] = engine.compile(plain, tune=x, tuning_cache=None)
    compiled = {variant: compiled[variant] for variant in VARIANTS}
    with torch.no_grad():
        ref = F.conv3d(x.double(), spatial.double(), padding=1)
        for variant in VARIANTS[:3]:                 # dense: fp32 result vs float64 conv3d
            error = float((compiled[variant](x).double() - ref).abs().max() / ref.abs().max())
            assert error < 1e-4, f"{name} {variant}: relative error {error:.2g}"
    functions = {"conv3d": lambda: F.conv3d(x, spatial, padding=1)}
    functions.update({variant: (lambda f=fast: f(x)) for variant, fast in compiled.items()})
    times = interleaved_times(functions, args.warmup, args.rounds)
    row = {"name": name, "shape": (batch, c, k, d, h),
           "conv_ms": statistics.median(times["conv3d"]) * 1e3}
    row["ratio"] = {v: statistics.median(t / e for t, e in zip(times["conv3d"], times[v]))
                    for v in VARIANTS}
    row["ms"] = {v: statistics.median(times[v]) * 1e3 for v in VARIANTS}
    row["formats"] = {v: compiled[v].format_counts() for v in VARIANTS}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (medians)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--shapes", type=int, nargs="+", default=list(range(len(SHAPES))),
                        help=f"indices into {[s[0] for s in SHAPES]}")
    parser.add_argument("--quick", action="store_true", help="shapes 0, 1, 5; batch 1; 5 rounds")
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    if args.quick:
        args.shapes, args.batches, args.rounds = [0, 1, 5], [1], 5
    torch.set_num_threads(args.threads)
    print(conditions("/".join(map(str, args.batches)), args.warmup, args.rounds)
          + f" | flags: {cpu_flags()} | engine backend: {engine.backend()}")
    print("\nconv3d ms / engine ms (> 1: the engine is faster); median of per-round ratios\n")
    print("| layer | (N, C, K, D, H=W) | conv3d ms | " + " | ".join(VARIANTS) + " |")
    print("|" + "---|" * (3 + len(VARIANTS)))
    rows = []
    for batch in args.batches:
        for index in args.shapes:
            row = measure(SHAPES[index], batch, args)
            rows.append(row)
            cells = " | ".join(f"{row['ratio'][v]:.2f}x ({row['ms'][v]:.3g} ms)" for v in VARIANTS)
            print(f"| {row['name']} | {row['shape']} | {row['conv_ms']:.3g} | {cells} |", flush=True)
    for batch in args.batches:
        chosen = [r for r in rows if r["shape"][0] == batch]
        medians = {v: statistics.median(r["ratio"][v] for r in chosen) for v in VARIANTS}
        print(f"| **median, batch {batch}** | | | "
              + " | ".join(f"**{medians[v]:.2f}x**" for v in VARIANTS) + " |")
    print()
    for batch in args.batches:
        chosen = [r for r in rows if r["shape"][0] == batch]
        for variant, target in TARGETS.items():
            median = statistics.median(r["ratio"][variant] for r in chosen)
            verdict = "met" if median >= target else "NOT met"
            print(f"target batch {batch}, {variant}: median >= {target}x -> {median:.2f}x ({verdict})")


if __name__ == "__main__":
    main()
