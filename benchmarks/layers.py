"""Winograd layer forward vs torch's conv2d on VGG- and ResNet-18-shaped 3x3 layers.

Prints a Markdown table of median forward times and the ratio conv2d / Winograd
(> 1 means the Winograd layer is faster), measured in the same run.

    python benchmarks/layers.py [--threads 2] [--runs 20] [--tiles 2 4 6]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_argument, conditions, median_time, record_output  # noqa: E402

from sparsewino.nn import WinogradConv2d  # noqa: E402

# (name, C, K, H): VGG-nagadomi on CIFAR (32x32) and ResNet-18 on ImageNet (224x224).
SHAPES = [
    ("VGG conv1.2", 64, 64, 32), ("VGG conv2.2", 128, 128, 16), ("VGG conv3.x", 256, 256, 8),
    ("ResNet layer1", 64, 64, 56), ("ResNet layer2", 128, 128, 28),
    ("ResNet layer3", 256, 256, 14), ("ResNet layer4", 512, 512, 7),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tiles", type=int, nargs="+", default=[2, 4, 6])
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(conditions("/".join(map(str, args.batches)), args.warmup, args.runs), "\n")
    header = "| layer | N | C | K | H×W | conv2d ms | " + " | ".join(
        f"F({t},3) ms | ratio" for t in args.tiles) + " |"
    print(header)
    print("|" + "---|" * (6 + 2 * len(args.tiles)))
    with torch.inference_mode():
        for batch in args.batches:
            for name, c, k, h in SHAPES:
                x = torch.randn(batch, c, h, h)
                layers = [WinogradConv2d(c, k, 3, padding=1, tile=t) for t in args.tiles]
                weight, bias = layers[0].weight, layers[0].bias
                base = median_time(lambda x=x, w=weight, b=bias: F.conv2d(x, w, b, padding=1),
                                   args.warmup, args.runs)
                cells = []
                for layer in layers:
                    t = median_time(lambda m=layer, x=x: m(x), args.warmup, args.runs)
                    cells.append(f"{t * 1e3:.2f} | {base / t:.2f}")
                print(f"| {name} | {batch} | {c} | {k} | {h}×{h} | {base * 1e3:.2f} | "
                      + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
