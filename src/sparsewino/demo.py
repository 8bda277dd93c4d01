"""`make demo`: spatial-Winograd two-step pruning on real Fashion-MNIST, end to end, with a report.

Runs the bundled recipe ``fashion_mnist_spatial_winograd``: train a baseline, structured
spatial pruning with retraining (step 1), conversion to the Winograd domain, IFM
Winograd-domain pruning with retraining (step 2), evaluation, compilation to the sparse CPU
engine, benchmark and report. About 10 minutes on 2 CPU cores.

A second run reuses the run directory: finished steps are skipped (an interrupted run
resumes where it stopped) and the report is rewritten. ``--fresh`` starts over.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

__all__ = ["main"]

RECIPE = "fashion_mnist_spatial_winograd"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status (prints one line on errors, traceback with --debug)."""
    parser = argparse.ArgumentParser(prog="python -m sparsewino.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=f"runs/{RECIPE}", help=f"run directory (runs/{RECIPE})")
    parser.add_argument("--data-dir", help="Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--fresh", action="store_true", help="delete the previous run and start over")
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a recipe value (see `sparsewino run --help`)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="full traceback on errors")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        from .recipes import load_recipe, run_recipe
        from .report import headline
        overrides = list(args.set) + ([f"data.root={args.data_dir}"] if args.data_dir else [])
        recipe = load_recipe(RECIPE, overrides)
        print(f"sparsewino demo: {recipe.description}", flush=True)
        result = run_recipe(recipe, args.run_dir, fresh=args.fresh, progress=not args.quiet,
                            log=lambda message: print(message, flush=True))
    except KeyboardInterrupt:
        print("demo interrupted; run `make demo` again to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    numbers = headline(result.rows)

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    def times(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    print()
    print(f"baseline accuracy        {pct(numbers['baseline_accuracy'])}")
    print(f"final accuracy           {pct(numbers['final_accuracy'])}"
          + (f" (compiled engine {pct(numbers['final_compiled_accuracy'])})"
             if numbers["final_compiled_accuracy"] is not None else ""))
    print(f"Winograd-domain sparsity {pct(numbers['winograd_sparsity'])}")
    print(f"multiplication reduction {times(numbers['reduction_vs_direct'])} vs direct convolution, "
          f"{times(numbers['reduction_vs_winograd'])} vs dense Winograd")
    print(f"compiled speed-up        {times(numbers['speedup_vs_dense'])} vs dense PyTorch conv "
          f"(batch {numbers['benchmark_batch']}, {numbers['benchmark_threads']} threads)")
    print(f"wall time                {time.perf_counter() - started:.0f} s")
    print(f"report: {Path(result.report) if result.report else result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
