"""Adder layers' training step (forward + backward) on each backend vs torch's conv2d.

Prints a Markdown table of median times of one forward + backward pass and the ratio
time / conv2d time (how much slower the adder layer trains than a convolution of the same
shape), measured in the same run, per backend of ``sparsewino.nn.adder_kernels``.

    python benchmarks/adder.py [--threads 2] [--runs 10] [--batch 32]
    python benchmarks/adder.py --inference [--batch 1]   # eval: eager vs engine.compile vs conv2d
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import conditions  # noqa: E402

from sparsewino import engine  # noqa: E402
from sparsewino.nn import AdderConv2d, WinogradAdderConv2d, adder_kernels  # noqa: E402
from sparsewino.timing import cpu_flags  # noqa: E402

# (name, C, K, H): the body layers of adder_cnn on Fashion-MNIST and a wider one
SHAPES = [("adder_cnn body 1", 16, 16, 28), ("adder_cnn body 2", 16, 32, 14),
          ("adder_cnn body 3", 32, 32, 7), ("64 -> 64 @ 14", 64, 64, 14)]


def step_time(layer: nn.Module, x: torch.Tensor, warmup: int, runs: int) -> float:
    """Median seconds of one forward + backward pass."""
    times = []
    for i in range(warmup + runs):
        x.grad = None
        layer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        layer(x).sum().backward()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--inference", action="store_true",
                        help="inference of adder -> BatchNorm -> ReLU: eager, compiled, conv2d")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(conditions(args.batch, args.warmup, args.runs), f"| CPU flags: {cpu_flags()}\n")
    if args.inference:
        inference_table(args)
        return
    backends = adder_kernels.available_backends()
    head = ["layer", "conv2d (ms)"]
    cases = [(f"adder {b}", b, lambda c, k: AdderConv2d(c, k, 3, padding=1)) for b in backends]
    cases += [(f"Winograd adder F(2,3) p={p:g} {b}", b,
               lambda c, k, p=p: WinogradAdderConv2d(c, k, 3, padding=1, tile=2, p=p))
              for b in backends if b != "torch" for p in (1.0, 1.5)]
    head += [name for name, _, _ in cases]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, c, k, h in SHAPES:
        x = torch.randn(args.batch, c, h, h, requires_grad=True)
        base = step_time(nn.Conv2d(c, k, 3, padding=1, bias=False), x, args.warmup, args.runs)
        row = [f"{name} ({c}->{k}, {h}x{h})", f"{1000 * base:.2f}"]
        for _, backend, make in cases:
            with adder_kernels.use_backend(backend):
                seconds = step_time(make(c, k), x, args.warmup, args.runs)
            row.append(f"{1000 * seconds:.2f} ({seconds / base:.1f}x)")
        print("| " + " | ".join(row) + " |")


def call_time(model: nn.Module, x: torch.Tensor, warmup: int, runs: int) -> float:
    """Median seconds of one inference call."""
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def inference_table(args: argparse.Namespace) -> None:
    """adder -> BatchNorm -> ReLU in eval mode: the layer's own forward, ``engine.compile`` (one
    program: im2col, adder per image, affine + ReLU) and a dense conv2d block, alternately."""
    print(f"engine backend: {engine.backend()}\n")
    print("| layer | conv2d block (ms) | adder eager (ms) | adder compiled (ms) | compiled vs eager |")
    print("|---|---|---|---|---|")
    for name, c, k, h in SHAPES:
        def block(layer: nn.Module, k: int = k) -> nn.Module:
            return nn.Sequential(layer, nn.BatchNorm2d(k), nn.ReLU()).eval()
        conv = block(nn.Conv2d(c, k, 3, padding=1))
        eager = block(AdderConv2d(c, k, 3, padding=1))
        fast = engine.compile(eager)
        x = torch.randn(args.batch, c, h, h)
        times: dict[str, list[float]] = {"conv": [], "eager": [], "fast": []}
        for _ in range(3):                                 # rounds: drift hits every engine
            for key, model in (("conv", conv), ("eager", eager), ("fast", fast)):
                times[key].append(call_time(model, x, args.warmup, args.runs))
        conv_ms, eager_ms, fast_ms = (1000 * statistics.median(times[key])
                                      for key in ("conv", "eager", "fast"))
        print(f"| {name} ({c}->{k}, {h}x{h}) | {conv_ms:.3f} | {eager_ms:.3f} | {fast_ms:.3f} | "
              f"{eager_ms / fast_ms:.2f}x |")


if __name__ == "__main__":
    main()
