"""Fashion-MNIST comparison: CNN vs AdderNet vs Winograd AdderNet (standard; balanced + l2-to-l1).

The four models share the network (:func:`sparsewino.models.adder_cnn`: a stem convolution,
three 3x3 body layers with BatchNorm, a linear classifier), the data, the schedule and the
seed; only the body layers differ:

* ``cnn``: ``nn.Conv2d``;
* ``addernet``: :class:`~sparsewino.nn.AdderConv2d` (AdderNet training rules);
* ``winograd_adder_standard``: :class:`~sparsewino.nn.WinogradAdderConv2d`, F(2x2,3x3) with
  the standard transforms, p = 1 throughout;
* ``winograd_adder_balanced_l2l1``: balanced transforms, p annealed 2 -> 1 over the first
  half of training (:class:`~sparsewino.train.L2ToL1Schedule`).

For each: test accuracy, additions, multiplications and energy of one 28x28 image
(:func:`sparsewino.engine.count`, 45 nm fp32 figures) and training time. Writes
``results.csv`` and ``results.md`` to the output directory. Each model's training is
checkpointed there, so a second run reuses finished models (``--fresh`` retrains).

Run: ``python benchmarks/adder_fashion_mnist.py [--epochs 2] [--train-limit 20000]
[--out DIR]`` (``make adder``): by default 2 epochs over the first 20000 training images (312 steps), measured
at 2 min for the CNN and about 10 min for each adder model on 2 cores shared with other jobs,
about 30 min in all (``--smoke`` trains on 512 images for a quick check).
"""
from __future__ import annotations

import argparse
import csv
import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from sparsewino.engine import count
from sparsewino.models import create_model
from sparsewino.nn import set_exponent
from sparsewino.recipes.data_setup import prepare_data
from sparsewino.recipes.schema import DataConfig
from sparsewino.timing import cpu_flags, cpu_model
from sparsewino.train import DistContext, L2ToL1Schedule, OptimizerConfig, ScheduleConfig, TrainConfig, fit

__all__ = ["COMPARISON", "ABLATIONS", "ModelSetting", "run", "main"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSetting:
    """One model of the comparison: ``adder_cnn`` options and whether p is annealed."""

    name: str
    description: str
    args: dict[str, Any] = field(default_factory=dict)
    l2_to_l1: bool = False


COMPARISON: tuple[ModelSetting, ...] = (
    ModelSetting("cnn", "CNN (nn.Conv2d body)", {"layer": "conv"}),
    ModelSetting("addernet", "AdderNet (AdderConv2d body)", {"layer": "adder"}),
    ModelSetting("winograd_adder_standard", "Winograd AdderNet, F(2x2,3x3), standard transforms",
                 {"layer": "winograd_adder", "tile": 2, "transforms": "standard"}),
    ModelSetting("winograd_adder_balanced_l2l1",
                 "Winograd AdderNet, F(2x2,3x3), balanced transforms + l2-to-l1",
                 {"layer": "winograd_adder", "tile": 2, "transforms": "balanced"}, l2_to_l1=True),
)
#: Optional runs (``--models``) that separate the two ideas: balanced transforms alone, and
#: l2-to-l1 training with the standard transforms.
ABLATIONS: tuple[ModelSetting, ...] = (
    ModelSetting("winograd_adder_balanced", "Winograd AdderNet, F(2x2,3x3), balanced transforms",
                 {"layer": "winograd_adder", "tile": 2, "transforms": "balanced"}),
    ModelSetting("winograd_adder_standard_l2l1",
                 "Winograd AdderNet, F(2x2,3x3), standard transforms + l2-to-l1",
                 {"layer": "winograd_adder", "tile": 2, "transforms": "standard"}, l2_to_l1=True),
)
FIELDS = ("model", "description", "accuracy", "body_additions", "body_multiplications",
          "additions", "multiplications", "energy_nj", "body_energy_nj", "train_seconds",
          "epochs")


def _train_config(epochs: float, batch_size: int, seed: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed,
                       optimizer=OptimizerConfig("sgd", lr=0.1, momentum=0.9, weight_decay=5e-4),
                       schedule=ScheduleConfig("cosine"), eval_every_epoch=False)


def run(out: Path, epochs: float = 2.0, batch_size: int = 128, seed: int = 0,
        train_limit: int | None = None, test_limit: int | None = None,
        models: Sequence[str] | None = None, fresh: bool = False,
        dataset: str = "fashion-mnist", data_options: dict[str, Any] | None = None
        ) -> list[dict[str, Any]]:
    """Train and measure the models of :data:`COMPARISON` (or ``models``, which may name
    :data:`ABLATIONS`); write ``results.csv``/``.md`` to ``out``.

    ``dataset`` (and its ``data_options``) replaces Fashion-MNIST, e.g. ``"fake"`` in tests.

    Returns:
        One row per model (the keys of :data:`FIELDS`).
    """
    known = COMPARISON + ABLATIONS
    settings = list(COMPARISON) if models is None else [s for s in known if s.name in models]
    unknown = set(models or ()) - {s.name for s in known}
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}; choose from {[s.name for s in known]}")
    out.mkdir(parents=True, exist_ok=True)
    ctx = DistContext(device=torch.device("cpu"))
    data = prepare_data(DataConfig(dataset, batch_size=batch_size, train_limit=train_limit,
                                   test_limit=test_limit, augment=False,
                                   options=dict(data_options or {})), ctx, seed)
    config = _train_config(epochs, batch_size, seed)
    rows = []
    for setting in settings:
        checkpoint = out / f"{setting.name}.pt"
        if fresh and checkpoint.exists():
            checkpoint.unlink()
        torch.manual_seed(seed)
        model = create_model("adder_cnn", in_channels=data.in_channels,
                             num_classes=data.num_classes, **setting.args)
        loader = data.train_loader(batch_size, seed)
        callbacks = [L2ToL1Schedule(total_steps=max(1, round(epochs * len(loader))))] \
            if setting.l2_to_l1 else []
        _log.info("training %s: %s", setting.name, setting.description)
        result = fit(model, loader, config, eval_loader=data.test_loader(), callbacks=callbacks,
                     ctx=ctx, checkpoint=checkpoint, stage=setting.name, progress=False,
                     identity={"model": setting.name, **setting.args})
        set_exponent(model, 1.0)                      # inference uses the l1 distance
        counts = count(model, data.input_shape(1))
        body = [l for l in counts if l.name not in ("0",)]
        ops = counts.operations
        row = {"model": setting.name, "description": setting.description,
               "accuracy": round(result.evaluation["accuracy"], 4),
               "body_additions": sum(l.additions for l in body),
               "body_multiplications": sum(l.multiplications for l in body),
               "additions": ops["additions"], "multiplications": ops["multiplications"],
               "energy_nj": round(ops["energy_pj"] / 1000, 1),
               "body_energy_nj": round(sum(l.energy_pj for l in body) / 1000, 1),
               "train_seconds": round(result.seconds, 1), "epochs": epochs}
        _log.info("%s: %s", setting.name, row)
        rows.append(row)
    _write(out, rows, epochs, batch_size, seed, train_limit)
    return rows


def _write(out: Path, rows: list[dict[str, Any]], epochs: float, batch_size: int, seed: int,
           train_limit: int | None) -> None:
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| model | test accuracy | body additions | body multiplications | body energy (nJ) | "
        "whole-model energy (nJ) | training time (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['description']} | {100 * r['accuracy']:.2f} % | {r['body_additions']:,} | "
                     f"{r['body_multiplications']:,} | {r['body_energy_nj']:,.1f} | "
                     f"{r['energy_nj']:,.1f} | {r['train_seconds']:.0f} |")
    lines += ["", f"Fashion-MNIST, {epochs:g} epochs, batch {batch_size}, seed {seed}"
              + (f", first {train_limit} training images" if train_limit else "")
              + f"; operations of one 28x28 image; energy at 45 nm fp32 (add 0.9 pJ, multiply "
              f"3.7 pJ); {torch.get_num_threads()} threads, {cpu_model()} ({cpu_flags()}), "
              f"torch {torch.__version__}. Training times are wall time on this machine."]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/adder_fashion_mnist.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/adder_fashion_mnist"))
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", choices=[s.name for s in COMPARISON + ABLATIONS],
                        help="a subset of the comparison, or the ablations (default: the four models)")
    parser.add_argument("--train-limit", type=int, default=20000,
                        help="train on the first N training images (20000; 0: all 60000)")
    parser.add_argument("--smoke", action="store_true", help="512 training / 500 test images")
    parser.add_argument("--fresh", action="store_true", help="retrain models trained before")
    parser.add_argument("--copy-to", type=Path, help="also copy results.csv/.md to this directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = run(args.out, args.epochs, args.batch_size, args.seed,
               train_limit=512 if args.smoke else (args.train_limit or None), test_limit=500 if args.smoke else None,
               models=args.models, fresh=args.fresh)
    print((args.out / "results.md").read_text())
    if args.copy_to:
        args.copy_to.mkdir(parents=True, exist_ok=True)
        for name in ("results.csv", "results.md"):
            shutil.copy(args.out / name, args.copy_to / f"adder_{name}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
