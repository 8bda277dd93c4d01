"""Where a whole-model call's time goes: Python, the kernels in sequence, the kernels alone.

For the models of ``peers.py --models`` (Winograd weights pruned at random), per batch and
precision, median milliseconds of:

* ``call``: ``compiled(x)``, what a user measures;
* ``native``: the program's ``sw_run_program`` calls alone (no Python, no ctypes patching);
* ``in sequence``: the sum of the operations timed inside whole runs (``profile`` mode
  ``"sequence"``): the caches as a call leaves them;
* ``alone``: the sum of the operations each run by itself, warm (``profile`` mode ``"alone"``).

``call - native`` is the time outside the kernels (Python, ctypes); ``in sequence - alone`` is
what the operations lose to cold weights and buffers when they follow one another.

    python benchmarks/call_time.py                      # vgg75 vgg90 resnet70, batch 1
    python benchmarks/call_time.py --batches 1 32 --precisions fp32 bf16 --threads 2
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_argument, record_output  # noqa: E402
from peers import MODELS, model_case  # noqa: E402

from sparsewino import engine  # noqa: E402
from sparsewino.engine import kernels  # noqa: E402
from sparsewino.engine.program import _Segment, profile  # noqa: E402
from sparsewino.timing import cpu_flags, cpu_model, median_time  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batches", type=int, nargs="+", default=[1])
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100)
    add_json_argument(parser)
    args = parser.parse_args()
    record_output(args.json)
    torch.set_num_threads(args.threads)
    lib = kernels.library()
    print(f"CPU: {cpu_model()}; flags: {cpu_flags()}; threads {args.threads}; "
          f"backend {kernels.backend()}; torch {torch.__version__}\n")
    print("| model | batch | precision | call ms | native ms | ops in sequence ms | ops alone ms "
          "| outside the kernels | lost to cold caches |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in args.models:
        for batch in args.batches:
            case = model_case(key, batch, True)
            x = case.example
            model = next(iter(case.ours.values()))
            for precision in args.precisions:
                fast = engine.compile(model, tune=x, precision=precision)
                with torch.no_grad():
                    program = fast.program(x)
                    segments = [s for s in program.steps if isinstance(s, _Segment)]
                    call = 1e3 * median_time(lambda f=fast, x=x: f(x), 10, args.runs)
                    # The programs' pointers now point into `keep` (the output of this run): it
                    # must live while they run without Python patching them.
                    keep = program.run(x)
                    native = 1e3 * median_time(lambda parts=segments: [
                        lib.sw_run_program(s.array, len(s.ops), None) for s in parts], 10, args.runs)
                    del keep
                    sequence = sum(ms for _, _, ms in profile(program, x, args.runs))
                    alone = sum(ms for _, _, ms in profile(program, x, args.runs, "alone"))
                print(f"| {MODELS[key][0]} | {batch} | {precision} | {call:.3f} | {native:.3f} | "
                      f"{sequence:.3f} | {alone:.3f} | {(call - native) / call:.1%} | "
                      f"{(sequence - alone) / call:.1%} |", flush=True)


if __name__ == "__main__":
    main()
