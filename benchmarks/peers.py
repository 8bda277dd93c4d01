"""sparsewino's engine beside the CPU runtimes users already have: 3x3 layers and whole models.

Every engine is measured in the same run, in alternating rounds (a drift of the machine hits
all of them), as the median over rounds of the median of ``runs`` calls after warm-up:

* ``torch``: PyTorch eager, dense (``F.conv2d`` / the dense model);
* ``sparsewino``: ``engine.compile(model, tune=example)`` of the Winograd-domain model whose
  Winograd weights have the given fraction of zeros (random, unstructured: what native
  Winograd pruning gives); at 0 % the unpruned model keeps spatial weights, so compile-time
  tuning may pick another tile (F(2,3)/F(4,3)/F(6,3)) per layer;
* ``onnxruntime``, ``openvino-f32``, ``openvino-default``: the dense model as ONNX
  (OpenVINO's default precision is bf16 on CPUs with AVX512_BF16/AMX, else fp32; stated);
* ``deepsparse``: the model with its *spatial* weights magnitude-pruned to the same fraction
  (DeepSparse's own sparse kernels), in its own Python (``--deepsparse-python``).

Ratios are ``torch time / engine time`` (> 1: faster than PyTorch); "vs best dense" divides
the fastest dense time of torch, ONNX Runtime, OpenVINO fp32 and OpenVINO's default precision
(bf16 where the CPU has AVX512_BF16/AMX; the cell names it) for that shape by ours. Peers get
their input bound once (ONNX Runtime I/O binding, an OpenVINO tensor sharing the memory), and
each engine is timed after a pause, so that the previous one's spinning threads are idle.

    python benchmarks/peers.py --layers                 # 3x3 layer table (batch 1 and 8)
    python benchmarks/peers.py --models                 # VGG-nagadomi, ResNet-18-max
    python benchmarks/peers.py --layers --quick         # 4 shapes, fewer runs
    python benchmarks/peers.py --layers --cases 2 6 --sparsity 0.9 --json out.json
    python benchmarks/peers.py --models --precisions fp32 bf16   # + our bf16 mode vs OpenVINO's
    python benchmarks/peers.py --models --blocks        # ours pruned in blocks of 8 channels

``--blocks``: our Winograd weights are pruned in whole blocks of 8 output channels at one
position and input channel (``winograd_domain(block=8)``; the engine's blocked format) with the
same fraction of zeros; DeepSparse keeps its unstructured magnitude pruning (its best case).
The same model pruned in single entries is timed in the same rounds (``sparsewino-entries``).
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import prune_random, prune_random_blocks  # noqa: E402
from peer_runtimes import DeepSparsePeer, default_deepsparse_python, export_onnx, start_peers  # noqa: E402

from sparsewino import engine  # noqa: E402
from sparsewino.models import resnet18_max, vgg_nagadomi  # noqa: E402
from sparsewino.nn import WinogradConv2d, convert  # noqa: E402
from sparsewino.timing import cpu_flags, cpu_model  # noqa: E402
from sparsewino.winograd.transform import filter_transform  # noqa: E402

# (name, N, C, K, H): 3x3 padding-1 layers of VGG-nagadomi (CIFAR-10) and ResNet-18 (ImageNet).
LAYERS = [
    ("VGG conv1.2", 1, 64, 64, 32), ("VGG conv2.2", 1, 128, 128, 16),
    ("VGG conv3.x", 1, 256, 256, 8), ("ResNet layer1", 1, 64, 64, 56),
    ("ResNet layer2", 1, 128, 128, 28), ("ResNet layer3", 1, 256, 256, 14),
    ("ResNet layer4", 1, 512, 512, 7),
]
LAYERS += [(f"{name} b8", 8, c, k, h) for name, _, c, k, h in LAYERS]
# (name, builder, input side, sparsity, first-conv sparsity)
MODELS = {
    "vgg75": ("VGG-nagadomi 75%", vgg_nagadomi, 32, 0.75),
    "vgg90": ("VGG-nagadomi 90%", vgg_nagadomi, 32, 0.90),
    "resnet70": ("ResNet-18-max 70%", resnet18_max, 224, 0.70),
}
FIRST_CONV_SPARSITY = 0.2           # the spatial-Winograd authors prune the first conv lightly
#: The dense runtimes whose fastest is "best dense": OpenVINO's default precision included (bf16
#: on CPUs with AVX512_BF16/AMX: the table says which), as a user deploying it would get.
DENSE_PEERS = ("torch", "onnxruntime", "openvino-f32", "openvino-default")


def prune_magnitude(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """``weight`` with its ``round(sparsity * numel)`` smallest magnitudes set to zero."""
    zeros = round(sparsity * weight.numel())
    if zeros == 0:
        return weight.clone()
    order = weight.abs().flatten().argsort()
    flat = weight.flatten().clone()
    flat[order[:zeros]] = 0
    return flat.reshape(weight.shape)


def randomise_batchnorm(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics, so that folding BatchNorm is really exercised."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def sparse_winograd_model(dense: nn.Module, sparsity: float, prune_fc: bool,
                          blocks: bool = False) -> nn.Module:
    """Winograd-domain copy of ``dense``, Winograd weights pruned at random to ``sparsity``
    (first conv lightly; ``blocks``: in whole blocks of 8 output channels at one position and
    input channel, the engine's blocked format); hidden Linear layers magnitude-pruned to
    ``sparsity``."""
    model, _ = convert(copy.deepcopy(dense), tile=4, domain="winograd")
    prune = prune_random_blocks if blocks else prune_random
    with torch.no_grad():
        layers = [m for m in model.modules() if isinstance(m, WinogradConv2d)]
        for i, layer in enumerate(layers):
            amount = min(sparsity, FIRST_CONV_SPARSITY) if i == 0 else sparsity
            layer.weight.copy_(prune(layer.weight, amount, i))
        if prune_fc:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            for layer in linears[:-1]:
                layer.weight.copy_(prune_magnitude(layer.weight, sparsity))
    return model.eval()


def spatial_pruned_model(dense: nn.Module, sparsity: float, prune_fc: bool) -> nn.Module:
    """``dense`` with conv weights (and hidden Linear weights) magnitude-pruned: DeepSparse's input."""
    model = copy.deepcopy(dense)
    with torch.no_grad():
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        for i, conv in enumerate(convs):
            amount = min(sparsity, FIRST_CONV_SPARSITY) if i == 0 else sparsity
            conv.weight.copy_(prune_magnitude(conv.weight, amount))
        if prune_fc:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            for layer in linears[:-1]:
                layer.weight.copy_(prune_magnitude(layer.weight, sparsity))
    return model.eval()


@dataclass
class Case:
    """One row: a dense reference and, per sparsity, the models each engine runs."""

    name: str
    example: torch.Tensor
    dense: nn.Module
    ours: dict[float, nn.Module] = field(default_factory=dict)        # Winograd-domain, pruned
    # --blocks: the same model pruned in single entries, timed beside it (fp32)
    entries: dict[float, nn.Module] = field(default_factory=dict)
    spatial: dict[float, nn.Module] = field(default_factory=dict)     # spatially pruned
    times: dict[str, list[float]] = field(default_factory=dict)       # engine key -> per round
    errors: dict[str, float] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)   # largest |reference| per engine


#: Warm-up time after the pause, whatever the call count (thread pools and clocks wake up).
WARMUP_SECONDS = 0.05


class Timer:
    """Median of ``runs`` calls after ``warmup``, ``runs`` chosen per callable for ~``budget`` s;
    ``pause`` seconds of sleep before each engine, so that the previous engine's worker threads
    (OpenMP and the runtimes' pools spin after their work) are idle before the next is timed."""

    def __init__(self, warmup: int, min_runs: int, max_runs: int, budget: float,
                 pause: float = 0.0) -> None:
        self.warmup, self.min_runs, self.max_runs, self.budget = warmup, min_runs, max_runs, budget
        self.pause = pause
        self.runs: dict[str, int] = {}

    def runs_for(self, key: str, once: float) -> int:
        if key not in self.runs:
            self.runs[key] = int(min(self.max_runs, max(self.min_runs, self.budget / max(once, 1e-6))))
        return self.runs[key]

    def measure(self, key: str, function: Callable[[], object]) -> float:
        time.sleep(self.pause)
        with torch.no_grad():
            start = time.perf_counter()
            function()
            runs = self.runs_for(key, time.perf_counter() - start)
            warm_until = time.perf_counter() + WARMUP_SECONDS    # and at least `warmup` calls
            for done in itertools.count():
                if done >= self.warmup and time.perf_counter() >= warm_until:
                    break
                function()
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                function()
                times.append(time.perf_counter() - start)
        return statistics.median(times)


def layer_case(index: int, sparsities: list[float], blocks: bool = False) -> Case:
    name, n, c, k, h = LAYERS[index]
    torch.manual_seed(index)
    dense = nn.Conv2d(c, k, 3, padding=1, bias=False).eval()
    with torch.no_grad():
        dense.weight.normal_(0, 1 / (3 * c ** 0.5))
    case = Case(f"{name} ({n}, {c}, {k}, {h}x{h})", torch.randn(n, c, h, h), dense)
    for s in sparsities:
        if s == 0:                       # an unpruned layer: spatial weights, any tile
            case.ours[s] = WinogradConv2d.from_conv(dense, tile=4).eval()
            continue
        variants = [(case.ours, prune_random_blocks if blocks else prune_random)]
        if blocks:                       # the same layer in single entries, timed beside it
            variants.append((case.entries, prune_random))
        for target, prune in variants:
            layer = WinogradConv2d(c, k, 3, padding=1, tile=4, domain="winograd", bias=False)
            with torch.no_grad():
                layer.weight.copy_(prune(filter_transform(dense.weight, layer.algorithms), s,
                                         index))
            target[s] = layer.eval()
        spatial = copy.deepcopy(dense)
        with torch.no_grad():
            spatial.weight.copy_(prune_magnitude(dense.weight, s))
        case.spatial[s] = spatial
    return case


def model_case(key: str, batch: int, prune_fc: bool, blocks: bool = False) -> Case:
    title, builder, side, sparsity = MODELS[key]
    torch.manual_seed(0)
    dense = randomise_batchnorm(builder())
    case = Case(f"{title} b{batch}", torch.randn(batch, 3, side, side), dense)
    case.ours[sparsity] = sparse_winograd_model(dense, sparsity, prune_fc, blocks)
    if blocks:
        case.entries[sparsity] = sparse_winograd_model(dense, sparsity, prune_fc)
    case.spatial[sparsity] = spatial_pruned_model(dense, sparsity, prune_fc)
    return case


def entries_key(sparsity: float) -> str:
    """The engine key of the single-entry model timed beside a block-pruned one (--blocks)."""
    return f"sparsewino-entries@{sparsity:g}"


def ours_key(sparsity: float, precision: str = "fp32") -> str:
    """The engine key of sparsewino at ``sparsity`` compiled with ``precision``."""
    return f"sparsewino@{sparsity:g}" if precision == "fp32" else \
        f"sparsewino-{precision}@{sparsity:g}"


def measure_case(case: Case, peers: dict, timer: Timer, rounds: int, tmp: Path,
                 check: bool, precisions: tuple[str, ...] = ("fp32",)) -> None:
    """Fill ``case.times`` (and ``case.errors`` when ``check``) for every engine."""
    x = case.example
    runners: dict[str, Callable[[], object]] = {"torch": lambda: case.dense(x)}
    references: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        reference = case.dense(x)
        for s, model in case.ours.items():
            expected = model(x)
            for precision in precisions:
                fast = engine.compile(model, tune=x, precision=precision)
                runners[ours_key(s, precision)] = (lambda f: lambda: f(x))(fast)
                references[ours_key(s, precision)] = expected
        for s, model in case.entries.items():
            fast = engine.compile(model, tune=x)
            runners[entries_key(s)] = (lambda f: lambda: f(x))(fast)
            references[entries_key(s)] = model(x)
    dense_onnx = export_onnx(case.dense, x, tmp / "dense.onnx")
    for name, peer in peers.items():
        if isinstance(peer, DeepSparsePeer):
            continue
        runners[name] = peer.load(dense_onnx, x)
        references[name] = reference
    handles: dict[str, str] = {}
    deepsparse = peers.get("deepsparse")
    if deepsparse is not None:
        for s, model in case.spatial.items():
            path = export_onnx(model, x, tmp / f"spatial_{s:g}.onnx")
            key = f"deepsparse@{s:g}"
            handles[key] = deepsparse.load(path, x.shape[0])
            if check:
                with torch.no_grad():
                    expected = model(x)
                case.errors[key] = float((deepsparse.run(handles[key], x) - expected).abs().max())
    if check:
        with torch.no_grad():
            for key, run in runners.items():
                if key in references:
                    out = torch.as_tensor(run())
                    case.errors[key] = float((out - references[key]).abs().max())
                    case.scales[key] = float(references[key].abs().max())
    keys = list(runners) + list(handles)
    case.times = {key: [] for key in keys}
    for _ in range(rounds):
        for key, run in runners.items():
            case.times[key].append(timer.measure(f"{case.name}/{key}", run))
        for key, handle in handles.items():
            time.sleep(timer.pause)
            once = deepsparse.time(handle, 0, 1)
            runs = timer.runs_for(f"{case.name}/{key}", once)
            case.times[key].append(deepsparse.time(handle, timer.warmup, runs))


def median_ms(case: Case, key: str) -> float | None:
    times = case.times.get(key)
    return statistics.median(times) * 1e3 if times else None


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:.3g}{unit}"


def report(cases: list[Case], sparsities: list[float], peers: dict, title: str,
           precisions: tuple[str, ...] = ("fp32",)) -> dict:
    """Print the time table and the ratio table; return the medians (for --json)."""
    dense_keys = ["torch"] + [k for k in ("onnxruntime", "openvino-f32", "openvino-default")
                              if k in peers]
    reduced = [p for p in precisions if p != "fp32"]
    print(f"\n### {title}: median ms per call\n")
    head = dense_keys + [f"{e}@{s:g}" for s in sparsities for e in ("deepsparse", "sparsewino")
                         if e != "deepsparse" or "deepsparse" in peers]
    head += [ours_key(s, p) for s in sparsities for p in reduced]
    head += [entries_key(s) for s in sparsities if any(s in c.entries for c in cases)]
    print("| case | " + " | ".join(head) + " |")
    print("|---|" + "---|" * len(head))
    results = {}
    for case in cases:
        row = {k: median_ms(case, k) for k in head}
        results[case.name] = {"ms": row, "max_abs_error": case.errors}
        print(f"| {case.name} | " + " | ".join(fmt(row[k]) for k in head) + " |")
    print(f"\n### {title}: ratios (torch ms / engine ms; 'vs best dense' = fastest of "
          f"{', '.join(k for k in DENSE_PEERS if k in dense_keys)} / sparsewino)\n")
    cols = []
    for s in sparsities:
        cols += [f"sparsewino {s:.0%}", f"vs best dense {s:.0%}"]
        if "deepsparse" in peers:
            cols += [f"deepsparse {s:.0%}", f"vs deepsparse {s:.0%}"]
    print("| case | best dense | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    summary: dict[str, list[float]] = {c: [] for c in cols}
    for case in cases:
        torch_ms = median_ms(case, "torch")
        best_name = min((k for k in DENSE_PEERS if median_ms(case, k) is not None),
                        key=lambda k: median_ms(case, k))
        best = median_ms(case, best_name)
        cells = []
        for s in sparsities:
            ours = median_ms(case, f"sparsewino@{s:g}")
            values = [torch_ms / ours, best / ours]
            if "deepsparse" in peers:
                theirs = median_ms(case, f"deepsparse@{s:g}")
                values += [torch_ms / theirs if theirs else None,
                           theirs / ours if theirs else None]
            for c, v in zip(cols[len(cells):], values):
                if v is not None:
                    summary[c].append(v)
            cells += [fmt(v, "x") for v in values]
        results[case.name]["best_dense"] = best_name
        precision = getattr(peers.get(best_name), "precision", "")
        label = f"{best_name} ({precision})" if best_name == "openvino-default" else best_name
        print(f"| {case.name} | {label} {best:.3g} ms | " + " | ".join(cells) + " |")
    medians = {c: statistics.median(v) for c, v in summary.items() if v}
    worst = {c: min(v) for c, v in summary.items() if v}
    print("| **median** | | " + " | ".join(fmt(medians.get(c), "x") for c in cols) + " |")
    print("| **worst** | | " + " | ".join(fmt(worst.get(c), "x") for c in cols) + " |")
    errors = [e for case in cases for e in case.errors.values()]
    if errors:
        print(f"\nlargest |engine - its reference model| over all cases: {max(errors):.2g}")
    if reduced:
        reduced_report(cases, sparsities, peers, reduced)
    return results


def reduced_report(cases: list[Case], sparsities: list[float], peers: dict,
                   precisions: list[str]) -> None:
    """Reduced precision against OpenVINO's default (bf16 where the CPU has it): time ratios
    and errors relative to the largest output of each engine's own fp32 reference."""
    default = "openvino-default" if "openvino-default" in peers else None
    label = f"OpenVINO default ({getattr(peers.get(default), 'precision', '?')})"
    print(f"\n### reduced precision: ratios to {label} and to our fp32; error / max |output|\n")
    print("| case | ours | time ms | vs " + label + " | vs ours fp32 | our error | "
          + label + " error |")
    print("|---|---|---|---|---|---|---|")
    for case in cases:
        theirs = median_ms(case, default) if default else None
        for s in sparsities:
            fp32 = median_ms(case, ours_key(s))
            for precision in precisions:
                key = ours_key(s, precision)
                ours = median_ms(case, key)
                print(f"| {case.name} | {precision} {s:.0%} | {fmt(ours)} | "
                      f"{fmt(theirs / ours if theirs and ours else None, 'x')} | "
                      f"{fmt(fp32 / ours if fp32 and ours else None, 'x')} | "
                      f"{fmt(relative_error(case, key))} | "
                      f"{fmt(relative_error(case, default) if default else None)} |")


def relative_error(case: Case, key: str) -> float | None:
    """``key``'s largest error over the largest output of its own reference (ours: the pruned
    model in fp32; dense peers: the dense model)."""
    if key not in case.errors or not case.scales.get(key):
        return None
    return case.errors[key] / case.scales[key]


def print_precisions(peers: dict) -> None:
    """The inference precision each OpenVINO peer ran (its default depends on the CPU)."""
    for name, peer in peers.items():
        if name.startswith("openvino"):
            print(f"{name}: inference precision {peer.precision}")


def close_peers(peers: dict) -> None:
    """Stop the DeepSparse worker process, if one was started."""
    for peer in peers.values():
        if isinstance(peer, DeepSparsePeer):
            peer.close()


def write_results(path: Path, threads: int, results: dict, **extra: object) -> None:
    """The medians (and ``extra`` fields) as JSON, with the CPU and its flags."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cpu": cpu_model(), "flags": cpu_flags(), "threads": threads,
                                **extra, "results": results}, indent=1, default=str) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", action="store_true", help="the 3x3 layer table")
    parser.add_argument("--models", action="store_true", help="the whole-model table")
    parser.add_argument("--cases", type=int, nargs="+", help=f"layer indices into "
                        f"{[f'{i}: {n} b{b}' for i, (n, b, *_) in enumerate(LAYERS)]}")
    parser.add_argument("--model-names", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--model-batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.0, 0.7, 0.9])
    parser.add_argument("--no-prune-fc", action="store_true",
                        help="keep the models' fully connected layers dense")
    parser.add_argument("--blocks", action="store_true",
                        help="prune our Winograd weights in blocks of 8 output channels (the "
                             "engine's blocked format) instead of single entries; DeepSparse "
                             "keeps unstructured magnitude pruning")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30, help="most timed calls per measurement")
    parser.add_argument("--pause", type=float, default=0.2,
                        help="seconds of sleep before each engine is timed (0.2)")
    parser.add_argument("--budget", type=float, default=0.1,
                        help="seconds per measurement (fewer runs for slow cases, at least 3)")
    parser.add_argument("--quick", action="store_true", help="4 layer cases, 2 rounds")
    parser.add_argument("--no-check", action="store_true", help="skip the output checks")
    parser.add_argument("--deepsparse-python", default=default_deepsparse_python(),
                        help="Python of an environment with deepsparse==1.8.0 "
                             "(default: $SPARSEWINO_DEEPSPARSE_PYTHON or .venv-deepsparse)")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                        help="our engine's product precisions (bf16: compile(precision='bf16'),"
                             " compared with OpenVINO's default precision)")
    args = parser.parse_args()
    if not (args.layers or args.models):
        args.layers = args.models = True
    cases_idx = args.cases if args.cases is not None else list(range(len(LAYERS)))
    if args.quick:
        cases_idx, args.rounds = [2, 6, 7, 11] if args.cases is None else cases_idx, 2
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    peers = start_peers(args.threads, args.deepsparse_python,
                        log=lambda m: print(m, file=sys.stderr))
    versions = {name: getattr(p, "version", "?") for name, p in peers.items()}
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs), SIMD flags: "
          f"{cpu_flags() or 'unknown'}")
    print(f"threads: {args.threads} | torch {torch.__version__} | sparsewino engine backend: "
          f"{engine.backend()} | peers: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"timing: {args.rounds} alternating rounds, each the median of 3..{args.runs} calls "
          f"(~{args.budget} s) after {args.warmup} warm-up calls and {WARMUP_SECONDS} s, a "
          f"{args.pause} s pause before "
          "each engine; the median over rounds; peers' inputs bound once (zero-copy)")
    print(f"command: python benchmarks/peers.py {' '.join(sys.argv[1:])}")
    print("our Winograd weights pruned at random in " + ("blocks of 8 output channels (blocked "
          "format)" if args.blocks else "single entries (unstructured)"))
    timer = Timer(args.warmup, 3, args.runs, args.budget, args.pause)
    precisions = tuple(dict.fromkeys(["fp32", *args.precisions]))
    results: dict[str, dict] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.layers:
                cases = []
                for index in cases_idx:
                    case = layer_case(index, args.sparsity, args.blocks)
                    measure_case(case, peers, timer, args.rounds, Path(tmp), not args.no_check,
                                 precisions)
                    cases.append(case)
                    print(f"  measured {case.name}", file=sys.stderr, flush=True)
                results["layers"] = report(cases, args.sparsity, peers, "3x3 layers", precisions)
            if args.models:
                cases = []
                for key in args.model_names:
                    for batch in args.model_batches:
                        case = model_case(key, batch, not args.no_prune_fc, args.blocks)
                        measure_case(case, peers, timer, args.rounds, Path(tmp),
                                     not args.no_check, precisions)
                        cases.append(case)
                        print(f"  measured {case.name}", file=sys.stderr, flush=True)
                sparsities = sorted({s for c in cases for s in c.ours})
                for s in sparsities:
                    subset = [c for c in cases if s in c.ours]
                    results[f"models@{s:g}"] = report(subset, [s], peers, f"whole models, {s:.0%}",
                                                      precisions)
        print_precisions(peers)
    finally:
        close_peers(peers)
    if args.json:
        write_results(args.json, args.threads, results, versions=versions)


if __name__ == "__main__":
    main()
