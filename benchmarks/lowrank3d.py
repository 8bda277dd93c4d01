"""Low-rank vs vanilla 3-D Winograd layers, and column vs unstructured pruning, on moving Fashion-MNIST.

Qin, Lin & Lin (2023) claim that (1) low-rank Winograd layers (W = U·V) train better than vanilla
Winograd-domain layers, which have many more trainable parameters, and (2) only column-wise
(low-rank oriented) sparsity gives practical speed-ups. On the small C3D (widths 8-P-16-M-32-M-32,
the first conv kept) trained briefly on moving Fashion-MNIST clips:

* **ranks table**: from one trained baseline, the convolutions become F(m,3)³ Winograd-domain
  layers (``--tile``, default 2), vanilla or low-rank at several ranks, each fine-tuned for the
  same epochs with the same optimizer (Adam: Winograd-domain gradients differ by orders of
  magnitude between positions); test accuracy after conversion and after fine-tuning against
  the trainable Winograd weights;
* **pruning table**: at equal Winograd sparsity (50 %, 75 %), column pruning of the fine-tuned
  low-rank model vs unstructured magnitude pruning of the fine-tuned vanilla model, each
  fine-tuned again; accuracy, and the *measured* time of the compiled models (batch 4,
  2 threads) against the dense conv3d model in PyTorch.

    python benchmarks/lowrank3d.py                    # the tables (about 30 min on 2 busy cores)
    python benchmarks/lowrank3d.py --quick            # smoke run (a few minutes)
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_argument, conditions, record_output  # noqa: E402

from sparsewino import engine  # noqa: E402
from sparsewino import prune as sp  # noqa: E402
from sparsewino.data import BatchLoader, Normalize, dataset_spec, load_dataset  # noqa: E402
from sparsewino.models import c3d_small  # noqa: E402
from sparsewino.nn import LowRankWinogradConv3d, WinogradConv3d, convert  # noqa: E402
from sparsewino.timing import cpu_flags, interleaved_times  # noqa: E402
from sparsewino.train import OptimizerConfig, ScheduleConfig, TrainConfig, evaluate, fit  # noqa: E402

WIDTHS = [8, "P", 16, "M", 32, "M", 32]
FIRST = "features.0"


class Bench:
    """Data, the trained baseline, fine-tuning and measurements."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        spec = dataset_spec(args.dataset)
        self.normalize = Normalize(spec.mean, spec.std)
        train = load_dataset(args.dataset, "train", num_samples=args.train, seed=args.seed)
        test = load_dataset(args.dataset, "test", num_samples=args.test, seed=args.seed)
        self.classes = len(train.classes)
        self.train_loader = BatchLoader(train, args.batch, self.normalize, shuffle=True,
                                        seed=args.seed)
        self.test_loader = BatchLoader(test, 200, self.normalize)
        self.images = next(iter(BatchLoader(test, 4, self.normalize).epoch(0)))[0]

    def fit(self, model: nn.Module, epochs: float, lr: float, optimizer: str | None = None) -> float:
        start = time.perf_counter()
        config = TrainConfig(epochs=epochs, batch_size=self.args.batch,
                             optimizer=OptimizerConfig(optimizer or self.args.optimizer, lr=lr,
                                                       momentum=0.9, weight_decay=0.0),
                             schedule=ScheduleConfig("cosine"), seed=self.args.seed,
                             eval_every_epoch=False, log_every=10 ** 9)
        fit(model, self.train_loader, config, progress=False)
        return time.perf_counter() - start

    def accuracy(self, model: nn.Module) -> float:
        return evaluate(model, self.test_loader)["accuracy"]

    def baseline(self) -> nn.Module:
        torch.manual_seed(self.args.seed)
        model = c3d_small(num_classes=self.classes, widths=WIDTHS)
        seconds = self.fit(model, self.args.epochs, 0.05, "sgd")
        print(f"baseline (conv3d): {100 * self.accuracy(model):.1f}% after {self.args.epochs} "
              f"epochs ({seconds:.0f} s)", flush=True)
        return model


def winograd_weights(model: nn.Module) -> int:
    """Trainable Winograd-domain weights of the converted layers (factors for low-rank ones)."""
    total = 0
    for module in model.modules():
        if isinstance(module, LowRankWinogradConv3d):
            total += module.parameter_counts()["low_rank"]
        elif isinstance(module, WinogradConv3d):
            total += module.weight.numel()
    return total


def ranks_table(bench: Bench, base: nn.Module) -> dict[str, nn.Module]:
    args = bench.args
    print(f"\n### Low-rank vs vanilla F({args.tile},3)³ layers, {args.finetune} fine-tune epoch(s) "
          f"each ({args.optimizer}, lr {args.lr})\n")
    print("| layers | rank | trainable Winograd weights | acc. after conversion % | "
          "acc. after fine-tune % | fine-tune s |")
    print("|---|---|---|---|---|---|")
    spatial = sum(m.weight.numel() for n, m in base.named_modules()
                  if isinstance(m, nn.Conv3d) and n != FIRST)
    print(f"| spatial conv3d (reference) | - | {spatial:,} | "
          f"{100 * bench.accuracy(base):.1f} | - | - |")
    kept = {}
    for rank in [None, *args.ranks]:
        model = copy.deepcopy(base)
        if rank is None:
            convert(model, tile=args.tile, domain="winograd", exclude=[FIRST])
        else:
            convert(model, tile=args.tile, low_rank=rank, exclude=[FIRST])
        before = bench.accuracy(model)
        seconds = bench.fit(model, args.finetune, args.lr)
        after = bench.accuracy(model)
        ranks = sorted({m.rank for m in model.modules() if isinstance(m, LowRankWinogradConv3d)})
        label = "vanilla Winograd" if rank is None else f"low-rank {rank}"
        print(f"| {label} | {'/'.join(map(str, ranks)) or 'full'} | {winograd_weights(model):,} | "
              f"{100 * before:.1f} | {100 * after:.1f} | {seconds:.0f} |", flush=True)
        if rank is None or rank == args.prune_rank:
            kept["vanilla" if rank is None else "low_rank"] = model
    return kept


def compiled_ms(bench: Bench, models: dict[str, nn.Module]) -> dict[str, float]:
    torch.set_num_threads(bench.args.threads)
    functions = {name: (lambda m=m: m(bench.images)) for name, m in models.items()}
    times = interleaved_times(functions, warmup=2, repeats=bench.args.repeats)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def pruning_table(bench: Bench, base: nn.Module, kept: dict[str, nn.Module]) -> None:
    args = bench.args
    print(f"\n### Column vs unstructured pruning at equal Winograd sparsity, "
          f"{args.prune_finetune} fine-tune epoch(s) ({args.optimizer}, lr {args.lr})\n")
    dense = copy.deepcopy(base).eval()
    rows, models = [], {"dense conv3d (PyTorch)": dense}
    for sparsity in args.sparsities:
        for label, source, method in (("column (low-rank)", kept["low_rank"], "column"),
                                      ("unstructured (vanilla)", kept["vanilla"], "magnitude")):
            model = copy.deepcopy(source)
            sp.prune_model(model, method, sparsity, exclude=[FIRST])
            before = bench.accuracy(model)
            bench.fit(model, args.prune_finetune, args.lr)
            after = bench.accuracy(model)
            report = sp.stats(model, input_shape=(1, 1, 16, 32, 32), tile=None)
            winograd = report.totals["winograd_sparsity"]
            model.eval()
            name = f"{label} {sparsity:.0%}"
            models[name] = engine.compile(model)
            rows.append((name, winograd, before, after))
    for name in ("dense vanilla Winograd", "dense low-rank"):
        source = kept["vanilla" if "vanilla" in name else "low_rank"]
        models[name] = engine.compile(copy.deepcopy(source).eval())
    times = compiled_ms(bench, models)
    reference = times["dense conv3d (PyTorch)"]
    print("| pruning | Winograd sparsity of converted layers % | acc. after pruning % | "
          "acc. after fine-tune % | compiled ms (batch 4) | speed-up vs dense conv3d |")
    print("|---|---|---|---|---|---|")
    for name in ("dense vanilla Winograd", "dense low-rank"):
        print(f"| {name} | 0.0 | - | - | {times[name]:.2f} | {reference / times[name]:.2f}x |")
    for name, winograd, before, after in rows:
        print(f"| {name} | {100 * winograd:.1f} | {100 * before:.1f} | {100 * after:.1f} | "
              f"{times[name]:.2f} | {reference / times[name]:.2f}x |")
    print(f"\ndense conv3d model in PyTorch: {reference:.2f} ms per batch of 4 clips")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="moving-fashion-mnist-motion")
    parser.add_argument("--train", type=int, default=3000, help="training clips")
    parser.add_argument("--test", type=int, default=1000, help="test clips")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=4, help="baseline epochs")
    parser.add_argument("--finetune", type=float, default=1.0, help="epochs after conversion")
    parser.add_argument("--prune-finetune", type=float, default=0.5)
    parser.add_argument("--tile", type=int, default=2, help="output tile m of F(m,3)³")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                        help="fine-tuning optimizer (the baseline trains with SGD)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    parser.add_argument("--prune-rank", type=int, default=16,
                        help="the low-rank model that is column-pruned")
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.75])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny data and epochs")
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    if args.quick:
        args.train, args.test, args.epochs, args.finetune, args.prune_finetune = 256, 128, 1, 0.25, 0.25
        args.ranks, args.prune_rank, args.repeats = [4, 16], 16, 5
    torch.set_num_threads(args.threads)
    print(conditions(4, 2, args.repeats) + f" | flags: {cpu_flags()} | data: {args.dataset}, "
          f"{args.train} training / {args.test} test clips | seed {args.seed}")
    bench = Bench(args)
    base = bench.baseline()
    kept = ranks_table(bench, base)
    pruning_table(bench, base, kept)


if __name__ == "__main__":
    main()
