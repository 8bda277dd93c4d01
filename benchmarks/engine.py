"""Sparse Winograd engine vs torch's dense conv2d: 3x3 layers at several sparsities, whole VGG-nagadomi.

Layer table: for VGG-nagadomi and ResNet-18 shaped 3x3 layers (padding 1), the ratio
``conv2d time / engine time`` (> 1: the engine is faster) of an F(4x4, 3x3) layer whose
Winograd-domain weights have the given fraction of zeros (random, unstructured). Times are
medians after warm-up (the median over rounds of per-round medians); conv2d and the engine
are measured alternately in the same run.
Model rows: VGG-nagadomi at 32x32, dense nn.Conv2d model vs the compiled model with ~75 %
Winograd sparsity (first conv 20 %, as the spatial-Winograd authors prune it lightly).

    python benchmarks/engine.py                  # full table (a few minutes)
    python benchmarks/engine.py --quick          # 3 shapes, 3 sparsities, fewer runs
    python benchmarks/engine.py --shapes 0 3 --sparsity 0 0.9 --no-model
    python benchmarks/engine.py --profile        # where the time goes (see docs/performance.md)
    python benchmarks/engine.py --blocks --shapes 2 6 7 --sparsity 0.7 0.9 --no-model
                                                 # also pruned in blocks of 8 output channels

``--blocks`` adds, per sparsity, a layer with the same number of zeros in whole blocks of 8
output channels at one Winograd position and input channel (what ``winograd_domain(block=8)``
prunes; compiled to the engine's blocked format) beside the unstructured one.
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import os
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_argument, cpu_model, median_time, prune_random, prune_random_blocks, record_output  # noqa: E402

from sparsewino import engine  # noqa: E402
from sparsewino.engine import kernels  # noqa: E402
from sparsewino.models import vgg_nagadomi  # noqa: E402
from sparsewino.nn import WinogradConv2d, convert  # noqa: E402
from sparsewino.winograd.algorithm import conv_multiplications  # noqa: E402
from sparsewino.winograd.transform import filter_transform  # noqa: E402

# (name, N, C, K, H): VGG-nagadomi on CIFAR-10 and ResNet-18 on ImageNet.
SHAPES = [
    ("VGG conv1.2", 1, 64, 64, 32), ("VGG conv2.2", 1, 128, 128, 16),
    ("VGG conv3.x", 1, 256, 256, 8), ("VGG conv2.2 b8", 8, 128, 128, 16),
    ("ResNet layer1", 1, 64, 64, 56), ("ResNet layer2", 1, 128, 128, 28),
    ("ResNet layer3", 1, 256, 256, 14), ("ResNet layer4", 1, 512, 512, 7),
    ("ResNet layer1 b8", 8, 64, 64, 56),
]
SPARSITIES = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95]
TARGETS = {0.0: 1.0, 0.7: 2.0, 0.9: 5.4}


def winograd_layer(spatial: torch.Tensor, sparsity: float, seed: int = 0,
                   blocks: bool = False) -> WinogradConv2d:
    k, c = spatial.shape[:2]
    layer = WinogradConv2d(c, k, 3, padding=1, tile=4, domain="winograd", bias=False)
    prune = prune_random_blocks if blocks else prune_random
    with torch.no_grad():
        layer.weight.copy_(prune(filter_transform(spatial, layer.algorithms), sparsity, seed))
    return layer.eval()


def columns(args: argparse.Namespace) -> list[tuple[str, float, bool]]:
    """(label, sparsity, in blocks) of the table's engine columns."""
    out = [(f"s={s:.0%}", s, False) for s in args.sparsity]
    if args.blocks:
        out += [(f"s={s:.0%} blocks", s, True) for s in args.sparsity if s > 0]
    return out


def layer_table(args: argparse.Namespace) -> list[dict]:
    rows = []
    for index in args.shapes:
        name, n, c, k, h = SHAPES[index]
        torch.manual_seed(index)
        x, w = torch.randn(n, c, h, h), torch.randn(k, c, 3, 3) / (3 * c ** 0.5)
        compiled = {label: engine.compile(winograd_layer(w, s, seed=index, blocks=blocks))
                    for label, s, blocks in columns(args)}
        conv_times: list[float] = []
        times: dict[str, list[float]] = {label: [] for label in compiled}
        with torch.no_grad():
            for _ in range(args.rounds):               # alternate: drift hits both sides
                conv_times.append(median_time(lambda x=x, w=w: F.conv2d(x, w, padding=1), args.warmup,
                                              args.runs))
                for s, fast in compiled.items():
                    times[s].append(median_time(lambda f=fast, x=x: f(x), args.warmup, args.runs))
        conv = statistics.median(conv_times)
        row = {"name": name, "shape": (n, c, k, h), "conv_ms": conv * 1e3,
               "ms": {s: statistics.median(t) * 1e3 for s, t in times.items()}}
        row["ratio"] = {s: conv * 1e3 / ms for s, ms in row["ms"].items()}
        rows.append(row)
        print(f"  measured {name} {row['shape']}", file=sys.stderr, flush=True)
    return rows


def print_layer_table(rows: list[dict], args: argparse.Namespace) -> None:
    cols = columns(args)
    head = "| layer | (N, C, K, H) | conv2d ms | " + " | ".join(c[0] for c in cols) + " |"
    print(head)
    print("|" + "---|" * (3 + len(cols)))
    for r in rows:
        cells = " | ".join(f"{r['ratio'][c[0]]:.2f}x ({r['ms'][c[0]]:.3g} ms)" for c in cols)
        print(f"| {r['name']} | {r['shape']} | {r['conv_ms']:.3g} | {cells} |")
    medians = {c[0]: statistics.median(r["ratio"][c[0]] for r in rows) for c in cols}
    print("| **median** | | | " + " | ".join(f"**{medians[c[0]]:.2f}x**" for c in cols) + " |")
    limits = " | ".join(f"{4 / (1 - s):.1f}x" if s < 1 else "-" for _, s, _ in cols)
    print(f"| multiplication limit 4/(1-s) | | | {limits} |")
    medians = {s: medians[label] for label, s, blocks in cols if not blocks}
    for s, target in TARGETS.items():
        if s in medians:
            verdict = "met" if medians[s] >= target else "NOT met"
            print(f"\ntarget at s={s:.0%}: median >= {target}x -> {medians[s]:.2f}x ({verdict})",
                  end="")
    print()


def nagadomi(sparsity: float, first: float = 0.2, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(dense nn.Conv2d model, Winograd-domain model with the given Winograd sparsity)."""
    torch.manual_seed(seed)
    dense = vgg_nagadomi().eval()
    with torch.no_grad():                               # non-trivial BatchNorm statistics
        for module in dense.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    sparse, _ = convert(copy.deepcopy(dense), tile=4, domain="winograd")
    with torch.no_grad():
        for i, layer in enumerate(m for m in sparse.modules() if isinstance(m, WinogradConv2d)):
            layer.weight.copy_(prune_random(layer.weight, first if i == 0 else sparsity, i))
    return dense, sparse.eval()


def model_rows(args: argparse.Namespace) -> None:
    print("\n| model (32x32) | batch | dense conv2d ms | compiled sparse ms | ratio |")
    print("|---|---|---|---|---|")
    dense, sparse = nagadomi(args.model_sparsity)
    fast = engine.compile(sparse)
    counts = engine.count(sparse, (1, 3, 32, 32))
    for batch in args.model_batches:
        x = torch.randn(batch, 3, 32, 32)
        base, ours = [], []
        with torch.no_grad():
            for _ in range(args.rounds):
                base.append(median_time(lambda x=x: dense(x), args.warmup, args.runs))
                ours.append(median_time(lambda x=x: fast(x), args.warmup, args.runs))
            err = (fast(x) - sparse(x)).abs().max().item()
        b, o = statistics.median(base) * 1e3, statistics.median(ours) * 1e3
        print(f"| VGG-nagadomi, {args.model_sparsity:.0%} Winograd sparsity | {batch} | "
              f"{b:.3g} | {o:.3g} | {b / o:.2f}x |")
    total = counts.total
    print(f"\nWinograd weight sparsity over all convs: "
          f"{1 - total['sparse'] / total['winograd']:.1%}; multiplications vs direct: "
          f"{counts.reduction['sparse']:.2f}x fewer; max |compiled - uncompiled sparse model| "
          f"= {err:.2g}")


def profile(args: argparse.Namespace) -> None:
    """Split engine time into transforms (+fixed costs), element-wise stage, Python overhead."""
    print("\n| layer | s | total ms | Python+call ms | transforms etc. ms | element-wise ms |"
          " element-wise GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    lib = kernels.library()
    for index in args.shapes:
        name, n, c, k, h = SHAPES[index]
        x, w = torch.randn(n, c, h, h), torch.randn(k, c, 3, 3)
        zero = engine.compile(winograd_layer(w, 1.0))
        dense_mults = conv_multiplications((zero.spec.algorithm,) * 2, c, k, 1, x.shape,
                                           zero.spec.padding)["winograd"]
        with torch.no_grad():
            keep = zero(x)               # the direct calls below write into this output
            t_zero_c = median_time(lambda z=zero: lib.sw_conv2d_forward(ctypes.byref(z._args)), args.warmup,
                                   args.runs)
        for s in args.sparsity:
            fast = engine.compile(winograd_layer(w, s))
            with torch.no_grad():
                t_total = median_time(lambda f=fast, x=x: f(x), args.warmup, args.runs)
                keep = fast(x)                                             # noqa: F841
                t_c = median_time(lambda f=fast: lib.sw_conv2d_forward(ctypes.byref(f._args)), args.warmup,
                                  args.runs)
            flops = 2 * dense_mults * (1 - s)
            elementwise = max(t_c - t_zero_c, 1e-9)
            print(f"| {name} | {s:.0%} | {t_total * 1e3:.3f} | {(t_total - t_c) * 1e3:.3f} | "
                  f"{t_zero_c * 1e3:.3f} | {elementwise * 1e3:.3f} | "
                  f"{flops / elementwise / 1e9:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--runs", type=int, default=15, help="timed calls per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of conv2d / engine measurements")
    parser.add_argument("--shapes", type=int, nargs="+", default=list(range(len(SHAPES))),
                        help=f"indices into {[s[0] for s in SHAPES]}")
    parser.add_argument("--sparsity", type=float, nargs="+", default=SPARSITIES)
    parser.add_argument("--quick", action="store_true",
                        help="shapes 0-2, sparsities 0/0.7/0.9, fewer runs")
    parser.add_argument("--no-model", action="store_true", help="skip the whole-model rows")
    parser.add_argument("--model-sparsity", type=float, default=0.75)
    parser.add_argument("--model-batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--profile", action="store_true", help="time breakdown instead")
    parser.add_argument("--blocks", action="store_true",
                        help="also layers pruned in blocks of 8 output channels (blocked format)")
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    if args.quick:
        args.shapes, args.sparsity = args.shapes[:3], [0.0, 0.7, 0.9]
        args.runs, args.rounds = 7, 2
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs) | torch {torch.__version__} | "
          f"threads: {torch.get_num_threads()} | engine backend: {engine.backend()} | "
          f"warm-up: {args.warmup} | {args.rounds} rounds x {args.runs} runs (median)")
    print(f"command: python benchmarks/engine.py {' '.join(sys.argv[1:])}\n")
    if args.profile:
        profile(args)
        return
    rows = layer_table(args)
    print_layer_table(rows, args)
    if not args.no_model:
        model_rows(args)


if __name__ == "__main__":
    main()
