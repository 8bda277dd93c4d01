"""Every pruning method on a small CNN trained on real Fashion-MNIST: sparsity in both domains, accuracy.

Trains the small VGG (3x3 convs 16,16,M,32,32,M,64 with BatchNorm) briefly, then for each
method and target: prune a copy of the trained model, measure spatial and Winograd-domain
sparsity (totals weighted by multiplications of a 28x28 image) and test accuracy, fine-tune
briefly with the masks held, and measure again. ``--tune-step2`` instead sweeps the step-2
learning rate and gradient exponent p (how the defaults in docs/pruning.md were chosen).

Usage:
    .venv/bin/python benchmarks/prune_methods.py                 # the table (~10 min, 2 cores)
    .venv/bin/python benchmarks/prune_methods.py --tune-step2    # the step-2 sweep
    .venv/bin/python benchmarks/prune_methods.py --quick         # smoke run (~1 min)
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import cpu_model  # noqa: E402

from sparsewino import prune as sp  # noqa: E402
from sparsewino.data import BatchLoader, Normalize, TensorImageDataset, dataset_spec, load_dataset  # noqa: E402
from sparsewino.models import small_vgg  # noqa: E402
from sparsewino.nn import convert  # noqa: E402
from sparsewino.train import OptimizerConfig, ScheduleConfig, TrainConfig, evaluate, fit  # noqa: E402

FIRST = "features.0"                       # the first conv: pruned lightly (20 %), as the authors did
SPATIAL_LR = 0.01                          # fine-tuning lr of spatial-domain models (methods.md findings)


def subset(dataset, count: int, seed: int, offset: int = 0) -> TensorImageDataset:
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    chosen = order[offset:offset + count]
    return TensorImageDataset(dataset.images[chosen], dataset.labels[chosen], dataset.classes)


class Bench:
    """Data, the trained baseline, and the prune → measure → fine-tune → measure routine."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        spec = dataset_spec("fashion-mnist")
        self.normalize = Normalize(spec.mean, spec.std)
        train_full = load_dataset("fashion-mnist", "train", args.data_dir)
        test_full = load_dataset("fashion-mnist", "test", args.data_dir)
        self.train = subset(train_full, args.train_images, args.seed)
        held_out = subset(train_full, args.pf_images, args.seed, offset=args.train_images)
        self.test = subset(test_full, args.test_images, args.seed)
        self.train_loader = BatchLoader(self.train, args.batch, self.normalize, shuffle=True,
                                        augmentation=spec.augmentation, seed=args.seed)
        self.test_loader = BatchLoader(self.test, 500, self.normalize)
        images, labels = held_out.get_batch(torch.arange(len(held_out)))
        self.held_out = (self.normalize(images), labels)
        self.baseline: nn.Module | None = None

    def accuracy(self, model: nn.Module) -> float:
        return evaluate(model, self.test_loader)["accuracy"]

    def fit(self, model: nn.Module, images: int, lr: float, callbacks=(), schedule: str = "constant",
            weight_decay: float = 5e-4) -> None:
        config = TrainConfig(epochs=images / len(self.train), batch_size=self.args.batch,
                             optimizer=OptimizerConfig("sgd", lr=lr, momentum=0.9,
                                                       weight_decay=weight_decay),
                             schedule=ScheduleConfig(schedule), seed=self.args.seed,
                             eval_every_epoch=False, log_every=10 ** 9)
        fit(model, self.train_loader, config, callbacks=list(callbacks), progress=False)

    def train_baseline(self) -> tuple[float, float]:
        """Train the dense baseline, or load it from ``--baseline`` when that file exists."""
        torch.manual_seed(self.args.seed)
        model = small_vgg()
        start = time.perf_counter()
        path = self.args.baseline
        if path and os.path.isfile(path):
            model.load_state_dict(torch.load(path, weights_only=True))
            print(f"(baseline loaded from {path})")
        else:
            self.fit(model, int(self.args.epochs * len(self.train)), lr=0.05, schedule="cosine")
            if path:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                torch.save(model.state_dict(), path)
        self.baseline = model
        return self.accuracy(model), time.perf_counter() - start

    def copy(self, domain: str | None = None, tile: int = 4) -> nn.Module:
        model = copy.deepcopy(self.baseline)
        if domain is not None:
            convert(model, tile=tile, domain=domain)
        return model

    def measure(self, model: nn.Module) -> tuple[float | None, float]:
        totals = sp.stats(model, input_shape=(1, 1, 28, 28)).totals
        spatial = None if any(m.domain == "winograd" for m in model.modules()
                              if hasattr(m, "domain")) else totals.get("spatial_sparsity")
        return spatial, totals["winograd_sparsity"]

    def row(self, method: str, target: str, model: nn.Module, lr: float, callbacks=(),
            finetune_images: int | None = None) -> dict:
        start = time.perf_counter()
        spatial, winograd = self.measure(model)
        before = self.accuracy(model)
        self.fit(model, finetune_images or self.args.finetune_images, lr, callbacks)
        spatial_after, winograd_after = self.measure(model)
        after = self.accuracy(model)
        row = dict(method=method, target=target, spatial=spatial_after, winograd=winograd_after,
                   before=before, after=after, lr=lr, seconds=time.perf_counter() - start)
        if not callbacks:          # the masks held: sparsity did not move during fine-tuning
            assert abs(winograd_after - winograd) < 1e-9, (method, winograd, winograd_after)
        print(format_row(row), flush=True)
        return row


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


HEADER = ("| method | target | spatial sparsity % | Winograd sparsity % | acc. after pruning % "
          "| acc. after fine-tune % | fine-tune lr |\n|---|---|---|---|---|---|---|")


def format_row(row: dict) -> str:
    return (f"| {row['method']} | {row['target']} | {pct(row['spatial'])} | {pct(row['winograd'])} "
            f"| {pct(row['before'])} | {pct(row['after'])} | {row['lr']:g} |")


def run_methods(bench: Bench, targets: list[float]) -> list[dict]:
    """One row per (method, target); each starts from the same trained baseline."""
    lr2 = sp.RECOMMENDED_LR
    rows = []
    overrides = {FIRST: 0.2}
    for t in targets:
        model = bench.copy()
        sp.prune_model(model, "magnitude", t, overrides=overrides)
        rows.append(bench.row("magnitude (spatial)", f"{t:.0%} spatial", model, SPATIAL_LR))
    step1_models = {}
    for t in targets:
        model = bench.copy()
        sp.prune_model(model, "spatial_winograd", t, overrides=overrides, tile=4)
        rows.append(bench.row("step 1: spatial-Winograd", f"{t:.0%} Winograd", model, SPATIAL_LR))
        step1_models[t] = model
    for ifm in (True, False):
        for t in targets:
            model = bench.copy("winograd")
            sp.prune_model(model, "winograd_domain", t, overrides=overrides, ifm=ifm)
            name = "step 2: Winograd-domain, IFM" if ifm else "step 2 without IFM (plain magnitude of Q)"
            rows.append(bench.row(name, f"{t:.0%} Winograd", model, lr2))
    low, high = targets[0], targets[-1]
    model = step1_models[low]
    convert(model, tile=4, domain="winograd")
    sp.prune_model(model, "winograd_domain", high, overrides=overrides)
    rows.append(bench.row(f"steps 1 ({low:.0%}) → 2 (IFM)", f"{high:.0%} Winograd", model, lr2))
    for t in targets:
        model = bench.copy("winograd")
        native = sp.NativeWinogradPruning(model, sparsity=t, l1=bench.args.native_l1,
                                          exclude=[FIRST])
        sp.prune_model(model, "winograd_domain", 0.2, include=[FIRST], ifm=False)
        native.on_train_begin(model)                   # first hard threshold, before measuring
        rows.append(bench.row("native (Li et al.; L1 + threshold)", f"{t:.0%} Winograd at start",
                              model, lr2, callbacks=[native]))
    relu_model, report = sp.winograd_relu(bench.copy(), tile=2)
    recovery = bench.args.relu_recovery_images
    bench.fit(relu_model, recovery, bench.args.relu_lr)         # the rewrite changes the network
    rows.append(bench.row("Winograd-ReLU rewrite, F(2,3), dense", "0%", copy.deepcopy(relu_model),
                          bench.args.relu_lr, finetune_images=1))
    for t in targets:
        model = copy.deepcopy(relu_model)
        sp.prune_model(model, "winograd_relu", t)
        rows.append(bench.row("Winograd-ReLU (Liu et al.)", f"density {1 - t:.0%}", model,
                              bench.args.relu_lr))
    for granularity, importance in (("feature_map", "l1"), ("kernel", "l1"), ("strided", "l2")):
        for t in targets[:1] if granularity == "feature_map" else targets:
            amount = t / 2 if granularity == "feature_map" else t
            model = bench.copy()
            sp.prune_model(model, "structured", amount, granularity=granularity,
                           importance=importance, exclude=[FIRST])
            rows.append(bench.row(f"structured {granularity} ({importance})",
                                  f"{amount:.0%} of units", model, SPATIAL_LR))
    model = bench.copy()
    search = sp.ParticleFilter(sp.batch_accuracy(*bench.held_out), particles=bench.args.particles,
                               iterations=bench.args.pf_iterations, seed=bench.args.seed)
    start = time.perf_counter()
    sp.prune_model(model, "structured", targets[0], granularity="kernel", importance=search,
                   exclude=[FIRST])
    print(f"(particle filter search: {time.perf_counter() - start:.0f} s)", flush=True)
    rows.append(bench.row("structured kernel (particle filter)", f"{targets[0]:.0%} of units",
                          model, SPATIAL_LR))
    print("\nWinograd-ReLU rewrite:\n" + str(report))
    return rows


def tune_step2(bench: Bench, targets: list[float], lrs: list[float], powers: list[float]) -> None:
    """Accuracy after step-2 pruning + fine-tune for every (lr, criterion/p) pair."""
    print("| target | criterion | p | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |")
    print("|---|---|---|" + "---|" * len(lrs))
    configs = [(False, 0.0)] + [(True, p) for p in powers]
    for t in targets:
        for ifm, power in configs:
            cells = []
            for lr in lrs:
                model = bench.copy("winograd")
                sp.prune_model(model, "winograd_domain", t, overrides={FIRST: 0.2}, ifm=ifm,
                               grad_power=power)
                before = bench.accuracy(model)
                bench.fit(model, bench.args.finetune_images, lr)
                cells.append(f"{pct(bench.accuracy(model))}")
            label = "IFM" if ifm else "plain"
            print(f"| {t:.0%} | {label} | {power:g} | " + " | ".join(cells) + f" |  (after pruning: "
                  f"{pct(before)})", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST idx directory")
    parser.add_argument("--baseline", default=None,
                        help="weights file of the trained baseline: loaded if it exists, else "
                             "written after training (same flags -> same baseline)")
    parser.add_argument("--train-images", type=int, default=20000)
    parser.add_argument("--test-images", type=int, default=5000)
    parser.add_argument("--epochs", type=float, default=2.0, help="baseline training epochs")
    parser.add_argument("--finetune-images", type=int, default=5000, help="images per fine-tune")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.5, 0.7])
    parser.add_argument("--native-l1", type=float, default=1e-5)
    parser.add_argument("--relu-lr", type=float, default=1e-3)
    parser.add_argument("--relu-recovery-images", type=int, default=10000,
                        help="fine-tune images right after the Winograd-ReLU rewrite")
    parser.add_argument("--particles", type=int, default=8)
    parser.add_argument("--pf-iterations", type=int, default=3)
    parser.add_argument("--pf-images", type=int, default=500, help="held-out images for the filter")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tune-step2", action="store_true", help="sweep step-2 lr and exponent p")
    parser.add_argument("--tune-lrs", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    parser.add_argument("--tune-powers", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_images, args.test_images, args.epochs = 2000, 500, 1.0
        args.finetune_images, args.relu_recovery_images, args.pf_images = 256, 256, 128
        args.particles, args.pf_iterations = 3, 1
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    bench = Bench(args)
    accuracy, seconds = bench.train_baseline()
    print(f"CPU: {cpu_model()} | torch {torch.__version__} | threads: {torch.get_num_threads()} | "
          f"Fashion-MNIST: {len(bench.train)} training / {len(bench.test)} test images | "
          f"batch {args.batch} | seed {args.seed}")
    print(f"baseline small VGG: {args.epochs:g} epochs ({seconds:.0f} s) -> test accuracy "
          f"{100 * accuracy:.1f} %; fine-tunes: {args.finetune_images} images, SGD momentum 0.9, "
          f"constant lr\n", flush=True)
    if args.tune_step2:
        tune_step2(bench, args.targets, args.tune_lrs, args.tune_powers)
    else:
        print(HEADER, flush=True)
        rows = run_methods(bench, args.targets)
        print("\n" + HEADER)
        print("\n".join(format_row(r) for r in rows))
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
