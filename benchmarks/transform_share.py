"""How much of each convolution of a trained model is its transforms: the model as trained
against the same model with every Winograd weight zero.

With all weights zero every position is skipped, so what is left of a convolution is its input
and output transforms (and fixed costs). Per kernel operation of the compiled model, median ms
of the trained and the zeroed copy, each operation timed alone (``engine.program.profile``,
mode ``"alone"``), in alternating rounds, and the share of the trained time the transforms take.

    python benchmarks/transform_share.py --run runs/fashion_mnist_gradual_step2_distill_short \\
        --batches 1 64 --json docs/data/performance/transform_share_demo.json
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_argument, record_output  # noqa: E402
from equal_accuracy import load  # noqa: E402

from sparsewino import engine  # noqa: E402
from sparsewino.engine.program import profile  # noqa: E402
from sparsewino.nn import WinogradConv2d  # noqa: E402
from sparsewino.timing import cpu_flags, cpu_model  # noqa: E402


def zeroed(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose Winograd layers' weights are all zero."""
    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        for module in copy_.modules():
            if isinstance(module, WinogradConv2d):
                module.weight.zero_()
    return copy_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path,
                        default=Path("runs/fashion_mnist_gradual_step2_distill_short"),
                        help="a finished run directory (default: the demo's)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--side", type=int, default=28)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=100)
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    torch.set_num_threads(args.threads)
    model = load(args.run)
    models = {"trained": model, "zero": zeroed(model)}
    channels = next(m for m in model.modules() if isinstance(m, WinogradConv2d)).in_channels
    print(f"CPU: {cpu_model()}; flags: {cpu_flags()}; threads {args.threads}; "
          f"{args.run}; operations timed alone, {args.rounds} alternating rounds x "
          f"{args.repeats} runs, median\n")
    print("| batch | operation | trained ms | all-zero weights ms | transforms' share |")
    print("|---|---|---|---|---|")
    for batch in args.batches:
        x = torch.randn(batch, channels, args.side, args.side)
        programs = {name: engine.compile(m, threads=args.threads).program(x)
                    for name, m in models.items()}
        times: dict[str, dict[str, list[float]]] = {name: {} for name in programs}
        for _ in range(args.rounds):
            for name, program in programs.items():
                for op, kind, ms in profile(program, x, args.repeats, "alone"):
                    if kind == "conv2d":
                        times[name].setdefault(op, []).append(ms)
        total = {name: 0.0 for name in programs}
        for op in times["trained"]:
            trained = statistics.median(times["trained"][op])
            zero = statistics.median(times["zero"][op])
            total["trained"] += trained
            total["zero"] += zero
            print(f"| {batch} | {op} | {trained:.4f} | {zero:.4f} | {zero / trained:.0%} |")
        print(f"| {batch} | all convolutions | {total['trained']:.4f} | {total['zero']:.4f} | "
              f"{total['zero'] / total['trained']:.0%} |", flush=True)


if __name__ == "__main__":
    main()
