"""The output error of bf16 mode per tile and density, beside direct bf16 and OpenVINO's default.

One 3x3 layer (C = K = 64 by default, 16x16 input, random weights and input), errors relative
to the largest output of the float64 convolution with the same fp32 weights:

* ``direct bf16``: input and weights rounded to bf16, exact products and sums (the best any
  bf16 direct convolution can do);
* ``ours F(m,3)``: ``engine.compile(precision="bf16")`` of the layer in the Winograd domain, all
  positions dense (bf16 products: weights and input tiles rounded) and with 75 % of the
  Winograd weights zero (sparse positions: bf16 weights times fp32 tiles);
* ``OpenVINO default``: the layer as ONNX on OpenVINO's default precision (bf16 on CPUs with
  AVX512_BF16/AMX; install the ``peers`` extra), when available.

    python benchmarks/bf16_error.py
    python benchmarks/bf16_error.py --channels 256 --size 8
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_argument, record_output  # noqa: E402
from peer_runtimes import export_onnx, start_peers  # noqa: E402

from sparsewino import engine  # noqa: E402
from sparsewino.engine.packing import round_bf16  # noqa: E402
from sparsewino.nn import WinogradConv2d  # noqa: E402
from sparsewino.timing import cpu_flags, cpu_model  # noqa: E402


def relative(y: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(max, rms) error relative to the reference's largest / rms value."""
    diff = y.double() - reference
    return (float(diff.abs().max() / reference.abs().max()),
            float(diff.pow(2).mean().sqrt() / reference.pow(2).mean().sqrt()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    torch.manual_seed(args.seed)
    c = args.channels
    conv = nn.Conv2d(c, c, 3, padding=1).eval()
    x = torch.randn(1, c, args.size, args.size)
    with torch.no_grad():
        reference = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
        direct = F.conv2d(round_bf16(x).double(), round_bf16(conv.weight).double(),
                          conv.bias.double(), padding=1)
    print(f"CPU: {cpu_model()}; flags: {cpu_flags()}; layer ({c} -> {c}, 3x3, "
          f"{args.size}x{args.size}); errors relative to max |output| (max / rms)\n")
    print("| computation | max error | rms error |")
    print("|---|---|---|")
    print("| direct bf16 (inputs and weights rounded, exact sums) | %.2e | %.2e |"
          % relative(direct, reference))
    for tile in (2, 4, 6):
        layer = WinogradConv2d.from_conv(conv, tile=tile).eval()
        for density in (1.0, 0.25):
            winograd, _ = engine_layer(layer, density)
            with torch.no_grad():
                exact = copy.deepcopy(winograd).double()(x.double())
                fast = engine.compile(winograd, precision="bf16")
                y = fast(x)
            error, rms = relative(y, exact)
            print(f"| ours F({tile},3) bf16, Winograd density {density:.0%} (vs its own fp64) | "
                  f"{error:.2e} | {rms:.2e} |")
    peers = start_peers(1, None, log=lambda m: print(m, file=sys.stderr))
    default = peers.get("openvino-default")
    if default is not None:
        with tempfile.TemporaryDirectory() as tmp:
            run = default.load(export_onnx(conv, x, Path(tmp) / "conv.onnx"), x)
            y = torch.as_tensor(run())
        print(f"| OpenVINO default ({default.precision}) | %.2e | %.2e |" % relative(y, reference))
    else:
        print("| OpenVINO default | not installed (make peers) | |")


def engine_layer(layer: WinogradConv2d, density: float) -> tuple[nn.Module, float]:
    """A Winograd-domain copy of ``layer`` with ``1 - density`` of its weights zeroed at random."""
    winograd = WinogradConv2d(layer.in_channels, layer.out_channels, 3, padding=1,
                              tile=layer.tile[0], domain="winograd").eval()
    with torch.no_grad():
        winograd.weight.copy_(layer.winograd_weight())
        winograd.bias.copy_(layer.bias)
        if density < 1:
            winograd.weight.mul_((torch.rand_like(winograd.weight) < density).float())
    return winograd, density


if __name__ == "__main__":
    main()
