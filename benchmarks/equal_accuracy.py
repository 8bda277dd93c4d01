"""Equal accuracy: our trained sparse model against the peers running their best model of it.

Three trained models of one task, each with its test accuracy from its run's ``results.json``:

* ``--ours``: our recipe's run (Winograd-domain sparse), compiled by ``engine.compile``
  (fp32, and bf16 mode with ``--precisions fp32 bf16``);
* ``--spatial``: a run whose model is spatially pruned (``magnitude`` in the equal-budget study):
  DeepSparse runs it with its sparse kernels, exported as ONNX;
* ``--dense``: the unpruned baseline: PyTorch, ONNX Runtime, OpenVINO fp32 and OpenVINO's
  default precision (bf16 on AVX512_BF16/AMX CPUs) run it.

Timing is ``benchmarks/peers.py``'s (same process, alternating rounds, a pause before each
engine, inputs bound once), on random inputs of the task's shape at each batch size.

    python benchmarks/equal_accuracy.py \\
        --ours runs/fashion_mnist_gradual_step2_distill_short \\
        --spatial runs/studies/fashion_mnist_equal/cells/magnitude.final-0.6/seed-0 \\
        --dense runs/studies/fashion_mnist_equal/baseline/seed-0 --batches 1 64 \\
        --precisions fp32 bf16 --json docs/data/performance/equal_accuracy.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_runtimes import default_deepsparse_python, start_peers  # noqa: E402
from peers import Case, Timer, close_peers, measure_case, print_precisions, report, write_results  # noqa: E402

from sparsewino import prune as sp  # noqa: E402
from sparsewino.nn import revert  # noqa: E402
from sparsewino.recipes.architecture import load_model  # noqa: E402
from sparsewino.timing import cpu_flags, cpu_model  # noqa: E402


def final_row(run: Path) -> dict:
    """The run's last evaluated row of ``results.json`` (accuracy), each field missing there
    (a sparsity the evaluation did not record) from the last row that has it."""
    path = run / "results.json"
    if not path.is_file():
        raise SystemExit(f"{run} has no results.json: give a finished run directory")
    rows = [r for r in json.loads(path.read_text()) if r.get("accuracy") is not None]
    if not rows:
        raise SystemExit(f"{path} holds no evaluated stage")
    merged: dict = {}
    for row in rows:
        merged.update({k: v for k, v in row.items() if v is not None})
    return {**merged, "accuracy": rows[-1]["accuracy"]}


def spatial_cell(name: str, row: dict) -> str:
    """Spatial sparsity of the spatially pruned and dense models (ours runs Winograd weights:
    its spatial number, from before the conversion, is not what it runs)."""
    return "–" if name == "ours" else f"{100 * (row.get('spatial_sparsity') or 0):.1f} %"


def load(run: Path, spatial: bool = False) -> torch.nn.Module:
    """The run's model with its masks applied for good; ``spatial``: its (spatial-domain)
    Winograd layers back to ``nn.Conv2d`` (what the peers' ONNX exporters take)."""
    model, _ = load_model(run)
    if spatial:
        revert(model)
    return sp.finalize(model).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", type=Path, required=True, help="our recipe's run directory")
    parser.add_argument("--spatial", type=Path, required=True,
                        help="a spatially pruned run (DeepSparse's model)")
    parser.add_argument("--dense", type=Path, required=True, help="the dense baseline's run")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--side", type=int, default=28, help="input height and width (28)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200, help="most timed calls per measurement")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per measurement")
    parser.add_argument("--pause", type=float, default=0.2)
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--deepsparse-python", default=default_deepsparse_python())
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    rows = {name: final_row(run) for name, run in
            (("ours", args.ours), ("spatial", args.spatial), ("dense", args.dense))}
    ours, spatial, dense = load(args.ours), load(args.spatial, True), load(args.dense, True)
    side = args.side
    channels = next(m for m in dense.modules() if hasattr(m, "in_channels")).in_channels

    peers = start_peers(args.threads, args.deepsparse_python,
                        log=lambda m: print(m, file=sys.stderr))
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs), SIMD flags: "
          f"{cpu_flags() or 'unknown'}")
    print(f"threads: {args.threads} | torch {torch.__version__} | peers: " +
          ", ".join(f"{k} {getattr(p, 'version', '?')}" for k, p in peers.items()))
    print(f"command: python benchmarks/equal_accuracy.py {' '.join(sys.argv[1:])}\n")
    print("| model | run | test accuracy | Winograd sparsity | spatial sparsity | runs on |")
    print("|---|---|---|---|---|---|")
    runs_on = {"ours": "sparsewino", "spatial": "DeepSparse", "dense": "PyTorch, ORT, OpenVINO"}
    for name, run in (("ours", args.ours), ("spatial", args.spatial), ("dense", args.dense)):
        r = rows[name]
        print(f"| {name} | {run} | {100 * r['accuracy']:.2f} % | "
              f"{100 * (r.get('winograd_sparsity') or 0):.1f} % | "
              f"{spatial_cell(name, r)} | {runs_on[name]} |")
    timer = Timer(args.warmup, 3, args.runs, args.budget, args.pause)
    precisions = tuple(dict.fromkeys(["fp32", *args.precisions]))
    key = round(rows["ours"].get("winograd_sparsity") or 0.0, 2)
    cases = []
    results: dict = {"models": rows}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for batch in args.batches:
                case = Case(f"batch {batch}", torch.randn(batch, channels, side, side), dense)
                case.ours[key] = ours
                case.spatial[key] = spatial
                measure_case(case, peers, timer, args.rounds, Path(tmp), True, precisions)
                cases.append(case)
                print(f"  measured batch {batch}", file=sys.stderr, flush=True)
            results["timing"] = report(cases, [key], peers, "equal accuracy", precisions)
        print_precisions(peers)
    finally:
        close_peers(peers)
    if args.json:
        write_results(args.json, args.threads, results, command=sys.argv)


if __name__ == "__main__":
    main()
