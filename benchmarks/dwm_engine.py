"""Decomposed (DWM) layers and the whole ResNet-18 on the engine vs torch's dense conv2d.

Layer table: the ResNet-18 stem (7x7/2), its stride-2 3x3 convolutions and a 5x5 layer, each
compiled from a WinogradConv2d with the default tile=4 (pieces chosen by ``decompose="auto"``)
whose Winograd-domain weights (every piece's Q) have the given fraction of zeros (random,
unstructured); ratio = conv2d time / engine time (> 1: the engine is faster), medians over
rounds of per-round medians, conv2d and the engine measured alternately.
Model table: ResNet-18 (ImageNet layout, 224x224): the dense nn.Conv2d model in PyTorch vs the
compiled model, dense and with ~70 % Winograd sparsity (every Winograd layer pruned to 70 % by
|Q| x importance factors, the stem to 20 %, as the spatial-Winograd authors prune the first
layer lightly); then the per-layer time breakdown of the sparse compiled model at the largest
batch (engine.program.profile: each kernel operation alone) next to each conv2d alone.

    python benchmarks/dwm_engine.py                    # everything (several minutes)
    python benchmarks/dwm_engine.py --no-model         # the layer table only
    python benchmarks/dwm_engine.py --no-layers --batches 8
    python benchmarks/dwm_engine.py --shapes 2 --layout stacked --tile 6
    python benchmarks/dwm_engine.py --no-model --direct --sparsity 0.7 0.9   # DWM vs direct
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_argument, cpu_model, median_time, prune_random, prune_random_blocks, record_output  # noqa: E402  # noqa: E402

from sparsewino import engine  # noqa: E402
from sparsewino import prune as sp  # noqa: E402
from sparsewino.engine import SparseDecomposedConv2d  # noqa: E402
from sparsewino.engine.direct import SparseDirectConv2d  # noqa: E402
from sparsewino.engine.program import profile  # noqa: E402
from sparsewino.models import create_model  # noqa: E402
from sparsewino.nn import WinogradConv2d, convert  # noqa: E402
from sparsewino.timing import cpu_flags  # noqa: E402

# (name, N, C, K, H, kernel, stride, padding)
SHAPES = [
    ("stem 7x7/2", 1, 3, 64, 224, 7, 2, 3), ("stem 7x7/2 b8", 8, 3, 64, 224, 7, 2, 3),
    ("layer2.0 3x3/2", 1, 64, 128, 56, 3, 2, 1), ("layer3.0 3x3/2", 1, 128, 256, 28, 3, 2, 1),
    ("layer4.0 3x3/2", 1, 256, 512, 14, 3, 2, 1), ("layer2.0 3x3/2 b8", 8, 64, 128, 56, 3, 2, 1),
    ("5x5 64->64 32x32", 1, 64, 64, 32, 5, 1, 2), ("5x5 64->64 32x32 b8", 8, 64, 64, 32, 5, 1, 2),
]
TARGETS = {0.0: 1.3, 0.7: 2.5}


def compiled_layer(w: torch.Tensor, stride: int, padding: int, sparsity: float,
                   args: argparse.Namespace, seed: int) -> SparseDecomposedConv2d:
    k, c, ks = w.shape[0], w.shape[1], w.shape[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = WinogradConv2d(c, k, ks, stride=stride, padding=padding, tile=args.tile,
                               decompose=args.decompose, bias=False)
    with torch.no_grad():
        layer.weight.copy_(w)
        layer = layer.to_winograd()
        layer.weight.copy_(prune_random(layer.weight, sparsity, seed))
    return SparseDecomposedConv2d.from_layer(layer.eval(), layout=args.layout)


def direct_layer(w: torch.Tensor, stride: int, padding: int, sparsity: float,
                 seed: int, blocks: bool = False) -> SparseDirectConv2d:
    """The same convolution run directly (im2col + sparse GEMM) with ``sparsity`` of its
    spatial weights zeroed (random, unstructured; ``blocks``: in blocks of 8 output channels at
    one input channel and tap, the GEMM's blocked format)."""
    conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=stride, padding=padding, bias=False)
    with torch.no_grad():
        conv.weight.copy_((prune_random_blocks if blocks else prune_random)(w, sparsity, seed))
    return SparseDirectConv2d.from_conv(conv.eval())


def layer_table(args: argparse.Namespace) -> None:
    kinds = [("DWM", s) for s in args.sparsity] + ([("direct", s) for s in args.sparsity]
                                                   if args.direct else [])
    kinds += [("direct blocks", s) for s in args.sparsity] if args.direct and args.blocks else []
    print("| layer | (N, C, K, H) | pieces | conv2d ms | " +
          " | ".join(f"{kind} s={s:.0%}" for kind, s in kinds) + " |")
    print("|" + "---|" * (4 + len(kinds)))
    ratios: dict[tuple[str, float], list[float]] = defaultdict(list)
    for index in args.shapes:
        name, n, c, k, h, ks, stride, padding = SHAPES[index]
        torch.manual_seed(index)
        x, w = torch.randn(n, c, h, h), torch.randn(k, c, ks, ks) / (ks * c ** 0.5)
        fast = {("DWM", s): compiled_layer(w, stride, padding, s, args, index) for s in args.sparsity}
        if args.direct:
            fast.update({("direct", s): direct_layer(w, stride, padding, s, index)
                         for s in args.sparsity})
            if args.blocks:
                fast.update({("direct blocks", s): direct_layer(w, stride, padding, s, index, True)
                             for s in args.sparsity})
        conv_times, times = [], {key: [] for key in fast}
        with torch.no_grad():
            for _ in range(args.rounds):
                conv_times.append(median_time(lambda x=x, w=w, st=stride, p=padding: F.conv2d(
                    x, w, stride=st, padding=p), args.warmup, args.runs))
                for key, f in fast.items():
                    times[key].append(median_time(lambda f=f, x=x: f(x), args.warmup, args.runs))
        conv = statistics.median(conv_times) * 1e3
        spec = fast[("DWM", args.sparsity[0])].spec
        pieces = (f"{spec.decomposition.pieces} x F({spec.tile},{spec.piece}) {spec.layout}")
        cells = []
        for key in kinds:
            ms = statistics.median(times[key]) * 1e3
            ratios[key].append(conv / ms)
            cells.append(f"{conv / ms:.2f}x ({ms:.3g} ms)")
        print(f"| {name} | {(n, c, k, h)} | {pieces} | {conv:.3g} | " + " | ".join(cells) + " |",
              flush=True)
    print("| **median** | | | | " + " | ".join(f"**{statistics.median(ratios[key]):.2f}x**"
                                               for key in kinds) + " |")
    ratios = {s: ratios[("DWM", s)] for s in args.sparsity}
    for s, target in TARGETS.items():
        if s in ratios:
            worst = min(ratios[s])
            print(f"\ntarget at s={s:.0%}: each shape >= {target}x -> lowest {worst:.2f}x, median "
                  f"{statistics.median(ratios[s]):.2f}x ({'met' if worst >= target else 'NOT met'})",
                  end="")
    print()


def resnet(sparsity: float, strided: str = "dwm", block: int | None = None
           ) -> tuple[nn.Module, nn.Module]:
    """(dense nn.Conv2d ResNet-18, Winograd-domain copy with ``sparsity`` of its Q pruned).

    ``strided="direct"``: the stride-2 3x3 convolutions stay ``nn.Conv2d`` (``convert``'s
    ``exclude``), magnitude-pruned to ``sparsity``, and the engine runs them directly (im2col +
    sparse GEMM); the 7x7/2 stem stays DWM pieces as in the default model. ``block=8``: every
    layer pruned in blocks of 8 output channels (the engine's blocked format)."""
    torch.manual_seed(0)
    dense = create_model("resnet18", num_classes=1000).eval()
    with torch.no_grad():
        for module in dense.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    strided_3x3 = (lambda name, m: isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)   # noqa: E731
                   and m.stride != (1, 1))
    model, _ = convert(copy.deepcopy(dense), tile=4, domain="winograd",
                       exclude=strided_3x3 if strided == "direct" else None)
    if sparsity:
        sp.prune_model(model, "winograd_domain", sparsity, overrides={"conv1": 0.2}, block=block)
        if strided == "direct":
            sp.prune_model(model, "magnitude", sparsity, include=strided_3x3, block=block)
        sp.finalize(model)
    return dense, model.eval()


def conv_times(dense: nn.Module, x: torch.Tensor, args: argparse.Namespace) -> dict[str, float]:
    """Median ms of each convolution of ``dense`` alone (F.conv2d on its recorded input)."""
    inputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda m, a, n=n: inputs.setdefault(n, a[0]))
             for n, m in dense.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        dense(x)
    for hook in hooks:
        hook.remove()
    modules = dict(dense.named_modules())
    return {name: median_time(lambda m=modules[name], i=inp: F.conv2d(
        i, m.weight, m.bias, m.stride, m.padding), args.warmup, args.runs) * 1e3
            for name, inp in inputs.items()}


def model_table(args: argparse.Namespace) -> None:
    dense, _ = resnet(0.0)
    _, model_dense = resnet(0.0)
    _, model_sparse = resnet(args.model_sparsity)
    fast = {"dense": engine.compile(model_dense), "sparse": engine.compile(model_sparse)}
    if args.direct:
        _, model_direct = resnet(args.model_sparsity, strided="direct")
        fast["direct"] = engine.compile(model_direct)
        if args.blocks:
            _, model_blocks = resnet(args.model_sparsity, strided="direct", block=8)
            fast["direct blocks"] = engine.compile(model_blocks)
        print("\nStride-2 3x3 convolutions kept as nn.Conv2d and magnitude-pruned: "
              + "; ".join(f"{d.name}: {d.detail}"
                          for d in fast["direct"].compile_report if d.name in ("conv1", "layer2.0.branch.conv1")))
    stats = sp.stats(model_sparse, input_shape=(1, 3, 224, 224))
    print(f"\nResNet-18 (224x224), Winograd sparsity of the sparse model: "
          f"{stats.totals['winograd_sparsity']:.1%} (weighted by multiplications); "
          f"{len(fast['sparse'].compile_report.fallbacks)} layers in PyTorch\n")
    direct_head = " engine ~70 %, strided direct ms | ratio |" if args.direct else ""
    direct_head += " engine ~70 % in blocks, strided direct ms | ratio |" if args.blocks else ""
    print("| batch | PyTorch dense ms | engine dense ms | ratio | engine ~70 % sparse ms | ratio |"
          + direct_head)
    print("|---|---|---|---|---|---|" + ("---|---|" if args.direct else "")
          + ("---|---|" if args.blocks else ""))
    for batch in args.batches:
        x = torch.randn(batch, 3, 224, 224)
        times: dict[str, list[float]] = defaultdict(list)
        with torch.no_grad():
            for _ in range(args.rounds):
                times["torch"].append(median_time(lambda x=x: dense(x), 1, args.model_runs))
                for key, f in fast.items():
                    times[key].append(median_time(lambda f=f, x=x: f(x), 1, args.model_runs))
            error = (fast["sparse"](x) - model_sparse(x)).abs().max().item()
        base, ours, sparse = (statistics.median(times[k]) * 1e3 for k in ("torch", "dense", "sparse"))
        extra = ""
        if args.direct:
            direct = statistics.median(times["direct"]) * 1e3
            extra = f" {direct:.1f} | {base / direct:.2f}x |"
        if args.blocks:
            blocks = statistics.median(times["direct blocks"]) * 1e3
            extra += f" {blocks:.1f} | {base / blocks:.2f}x |"
        print(f"| {batch} | {base:.1f} | {ours:.1f} | {base / ours:.2f}x | {sparse:.1f} | "
              f"{base / sparse:.2f}x |" + extra, flush=True)
    print(f"\nmax |compiled - uncompiled sparse model| = {error:.2g}")
    batch = max(args.batches)
    x = torch.randn(batch, 3, 224, 224)
    program = fast["sparse"].program(x)
    rows = profile(program, x, repeats=args.runs, mode="alone")
    per_layer: dict[str, float] = defaultdict(float)
    kinds: dict[str, list[str]] = defaultdict(list)
    for name, kind, ms in rows:
        per_layer[name] += ms
        kinds[name].append(kind)
    torch_ms = conv_times(dense, x, args)
    print(f"\nPer layer, batch {batch}, ~70 % sparse model (each kernel operation alone; conv2d "
          "alone on the same input):\n")
    print("| layer | engine ops | engine ms | conv2d ms | ratio |")
    print("|---|---|---|---|---|")
    for name, ms in per_layer.items():
        conv = torch_ms.get(name)
        ratio = f"{conv / ms:.2f}x" if conv else ""
        print(f"| {name} | {'+'.join(kinds[name])} | {ms:.2f} | "
              f"{f'{conv:.2f}' if conv else ''} | {ratio} |")
    total = sum(per_layer.values())
    print(f"| **total** | | **{total:.1f}** | **{sum(torch_ms.values()):.1f}** (convs only) | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=15, help="timed calls per round")
    parser.add_argument("--model-runs", type=int, default=5, help="timed model calls per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", type=int, nargs="+", default=list(range(len(SHAPES))),
                        help=f"indices into {[s[0] for s in SHAPES]}")
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.0, 0.7])
    parser.add_argument("--tile", default=4, type=lambda v: v if v == "auto" else int(v))
    parser.add_argument("--decompose", default="auto", choices=("auto", "dwm"))
    parser.add_argument("--layout", default="auto", choices=("auto", "stacked", "pieces"))
    parser.add_argument("--direct", action="store_true",
                        help="also each layer run directly (im2col + sparse GEMM, engine kind "
                             "'direct') with the same fraction of its spatial weights pruned")
    parser.add_argument("--blocks", action="store_true",
                        help="with --direct: also the direct layers pruned in blocks of 8 "
                             "output channels (magnitude(block=8); the GEMM's blocked format)")
    parser.add_argument("--no-layers", action="store_true")
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--model-sparsity", type=float, default=0.7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    add_json_argument(parser)
    args = parser.parse_args()
    if args.blocks and not args.direct:
        parser.error("--blocks needs --direct (it adds block-pruned direct layers and models)")
    record_output(args.json)
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs; {cpu_flags()}) | torch "
          f"{torch.__version__} | threads: {torch.get_num_threads()} | engine backend: "
          f"{engine.backend()} | warm-up: {args.warmup} | {args.rounds} rounds x {args.runs} runs "
          "(median)")
    print(f"command: python benchmarks/dwm_engine.py {' '.join(sys.argv[1:])}\n")
    if not args.no_layers:
        layer_table(args)
    if not args.no_model:
        model_table(args)


if __name__ == "__main__":
    main()
