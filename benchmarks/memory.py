"""Peak extra memory of one forward+backward: Winograd layer vs torch's conv2d.

Each configuration runs in a fresh subprocess with glibc's mmap threshold fixed at 64 KiB
(large tensors are mapped and unmapped one by one, so RSS follows live memory); the peak
resident set size (ru_maxrss) after the pass minus the RSS just before it (after allocating
input and weights, and a warm-up pass on a tiny input) is the extra memory the training pass
needed. Also printed: the input's Winograd-domain size P·C·N·T·4 bytes, the unit the layer's design bounds memory by.

    python benchmarks/memory.py [--batch 1] [--channels 64] [--size 56]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

from common import add_json_argument, record_output

CHILD = r"""
import json, resource, sys, torch, torch.nn.functional as F
from sparsewino.nn import WinogradConv2d
cfg = json.loads(sys.argv[1])
torch.set_num_threads(1)
n, c, h, tile, kind = cfg["batch"], cfg["channels"], cfg["size"], cfg["tile"], cfg["kind"]
layer = WinogradConv2d(c, c, 3, padding=1, tile=tile, domain=cfg.get("domain", "spatial"))
def run(x):
    if kind == "conv2d":
        return F.conv2d(x, layer.weight, layer.bias, padding=1)
    return layer(x)
run(torch.randn(1, c, 8, 8, requires_grad=True)).sum().backward()   # initialise libraries
layer.zero_grad()
x = torch.randn(n, c, h, h, requires_grad=True)
page_kib = resource.getpagesize() // 1024
base = int(open("/proc/self/statm").read().split()[1]) * page_kib     # current RSS, KiB
run(x).sum().backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_mib": (peak - base) / 1024}))
"""


def measure(cfg: dict) -> float:
    # A fixed mmap threshold makes glibc map every large tensor separately and unmap it on
    # free, so the peak RSS tracks live memory instead of heap fragmentation.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], check=True,
                         capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])["extra_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=56)
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    n, c, h = args.batch, args.channels, args.size
    act_mib = n * c * h * h * 4 / 2**20
    print(f"ResNet-18 layer1 shape at 224x224 input: N={n}, C=K={c}, {h}x{h}; "
          f"one activation = {act_mib:.2f} MiB\n")
    print("| layer | domain | peak extra MiB (fwd+bwd) | × activation | input Winograd size MiB |")
    print("|---|---|---|---|---|")
    direct = measure(dict(batch=n, channels=c, size=h, tile=4, kind="conv2d"))
    print(f"| conv2d | spatial | {direct:.1f} | {direct / act_mib:.1f} | |")
    for tile in (2, 4, 6):
        for domain in ("spatial", "winograd"):
            extra = measure(dict(batch=n, channels=c, size=h, tile=tile, kind="winograd",
                                 domain=domain))
            tiles = math.ceil(h / tile) ** 2
            wino_mib = (tile + 2) ** 2 * c * n * tiles * 4 / 2**20
            print(f"| F({tile},3) | {domain} | {extra:.1f} | {extra / act_mib:.1f} | "
                  f"{wino_mib:.1f} ({extra / wino_mib:.1f}×) |", flush=True)


if __name__ == "__main__":
    main()
