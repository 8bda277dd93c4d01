"""Dense GEMM: our dense panels against PyTorch's (oneDNN/MKL) in fp32 and bf16.

Is there a well-kept library that does the dense products of the Winograd positions better
than our kernel? PyTorch's CPU matmul is oneDNN/MKL (bf16 through oneDNN's AVX512-BF16/AMX
kernels where the CPU has them), so it stands for them without a new dependency. Shapes are
one Winograd position of the layers of ``peers.py`` (K x C weights times C x T tiles, F(4,3):
T = batch * tiles per image), run as our GEMM operation (the dense-panel kernel of every
dense position) on ``(T, C)`` inputs. Median ms of alternating rounds; GFLOP/s = 2 K C T / t.

    python benchmarks/dense_gemm.py --threads 1
"""
from __future__ import annotations

import argparse
import statistics

import torch
from common import add_json_argument, record_output  # noqa: E402
from torch import nn

from sparsewino.engine import SparseLinear
from sparsewino.timing import cpu_flags, cpu_model, median_time

# (name, C = K, tiles): one position of VGG conv2.2 / conv3.x and ResNet layer3 / layer4.
SHAPES = [("VGG conv2.2 b1", 128, 16), ("VGG conv3.x b1", 256, 4), ("VGG conv3.x b32", 256, 128),
          ("ResNet layer3 b1", 256, 16), ("ResNet layer4 b1", 512, 4),
          ("ResNet layer4 b32", 512, 128)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()}; flags: {cpu_flags()}; threads {args.threads}; torch "
          f"{torch.__version__}\n")
    print("| shape (K = C, T) | ours fp32 | ours bf16 | torch fp32 | torch bf16 | "
          "GFLOP/s ours fp32 / bf16 | torch fp32 / bf16 |")
    print("|---|---|---|---|---|---|---|")
    for name, c, t in SHAPES:
        torch.manual_seed(0)
        fc = nn.Linear(c, c, bias=False).eval()
        x = torch.randn(t, c)
        ours = {p: SparseLinear.from_linear(fc, formats="dense", precision=p)
                for p in ("fp32", "bf16")}
        w16, x16 = fc.weight.detach().bfloat16(), x.bfloat16()
        w32 = fc.weight.detach()
        runners = {"ours fp32": lambda o=ours["fp32"], x=x: o(x),
                   "ours bf16": lambda o=ours["bf16"], x=x: o(x),
                   "torch fp32": lambda x=x, w=w32: x @ w.T,
                   "torch bf16": lambda x=x16, w=w16: x @ w.T}
        times: dict[str, list[float]] = {k: [] for k in runners}
        with torch.no_grad():
            for _ in range(args.rounds):
                for key, run in runners.items():
                    times[key].append(1e3 * median_time(run, 5, args.runs))
        ms = {k: statistics.median(v) for k, v in times.items()}
        flops = 2 * c * c * t / 1e6            # per ms -> GFLOP/s
        print(f"| {name} ({c}, {t}) | " + " | ".join(f"{ms[k]:.4f}" for k in runners) +
              f" | {flops / ms['ours fp32']:.0f} / {flops / ms['ours bf16']:.0f} | "
              f"{flops / ms['torch fp32']:.0f} / {flops / ms['torch bf16']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
