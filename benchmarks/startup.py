"""Start-up time and memory of serving a model: an engine artifact (``engine.load``) against
rebuilding from the checkpoint (load + ``engine.compile``, tuned or not) and against ONNX
Runtime and OpenVINO loading the same model as ONNX.

Each way runs in a fresh process (``repeats`` times; medians): ``import`` is the time to
import what it needs (the Python ways), ``ready`` the time from there until the model can run
(load, compile, tune), ``first run`` the first inference on one input; ``total`` is measured by
this script around the whole process (interpreter start, import, load, one inference, exit)
and ``peak RSS`` is that process's maximum resident memory (``VmHWM``; for the C way GNU
``time``'s, where installed). The C API way runs ``examples/c/run_model`` on the artifact (no
Python). The model is pruned (Winograd-domain
sparsity ``--sparsity``), so the artifact holds sparse weights; the peers get the dense model
(they have no use for the zeros).
Tuning runs with an empty tuning cache each time (what a fresh machine pays).

    python benchmarks/startup.py                                  # ResNet-18 (CIFAR, max-pool)
    python benchmarks/startup.py --model small_vgg --channels 1 --size 28
    python benchmarks/startup.py --repeats 5 --threads 2 --json startup.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from sparsewino import engine
from sparsewino.models import create_model
from sparsewino.prune import prune_model
from sparsewino.recipes.architecture import apply_transform, new_architecture, save_model
from sparsewino.timing import cpu_flags, cpu_model

#: The child program of each way to start: prints {"import", "ready", "first"} in seconds.
CHILD = r"""
import json, sys, time
start = time.perf_counter()
way, path, shape, threads = sys.argv[1], sys.argv[2], tuple(map(int, sys.argv[3].split("x"))), int(sys.argv[4])
if way in ("artifact", "checkpoint", "checkpoint-tuned"):
    import torch
    torch.set_num_threads(threads)
    from sparsewino import engine
    if way != "artifact":
        from sparsewino.recipes import load_model
    imported = time.perf_counter()
    if way == "artifact":
        model = engine.load(path)
    else:
        net, _ = load_model(path)
        tune = torch.zeros(shape) if way == "checkpoint-tuned" else None
        model = engine.compile(net, threads=threads, tune=tune)
    def run(x):
        with torch.no_grad():
            return model(torch.from_numpy(x))
elif way == "onnxruntime":
    import onnxruntime
    imported = time.perf_counter()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    run = lambda x: session.run(None, {"x": x})
elif way == "openvino":
    import openvino as ov
    imported = time.perf_counter()
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                     "INFERENCE_PRECISION_HINT": "f32"})
    run = lambda x: compiled(x)
import numpy as np
ready = time.perf_counter()
run(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
first = time.perf_counter()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"import": imported - start, "ready": ready - imported, "first": first - ready,
                  "rss_mb": int(status["VmHWM"].split()[0]) / 1024}))
"""

GNU_TIME = "/usr/bin/time"

WAYS = {
    "artifact": "engine.load(model.swe)",
    "checkpoint-tuned": "checkpoint + engine.compile(tune=x) (cold tuning cache)",
    "checkpoint": "checkpoint + engine.compile() (no tuning)",
    "onnxruntime": "ONNX Runtime InferenceSession(model.onnx)",
    "openvino": "OpenVINO compile_model(model.onnx), f32",
    "c": "C API: examples/c/run_model model.swe (load, run, exit)",
}


def prepare(folder: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The checkpoint, the artifact (compiled with tuning, as `sparsewino export` does) and the
    dense ONNX file of one pruned model."""
    torch.manual_seed(0)
    options = {"width": args.width} if args.model.startswith("resnet") else {}
    architecture = new_architecture(args.model, options, args.channels, 10)
    model = create_model(args.model, in_channels=args.channels, num_classes=10, **options).eval()
    shape = (args.batch, args.channels, args.size, args.size)
    onnx = folder / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(shape),), str(onnx), dynamo=False, opset_version=13,
                          input_names=["x"], output_names=["y"])
    apply_transform(model, architecture, "convert", tile=4, domain="winograd")
    prune_model(model, "winograd_domain", args.sparsity)
    checkpoint = save_model(folder / "model.pt", model, architecture, input_shape=list(shape))
    compiled = engine.compile(model, threads=args.threads, tune=torch.zeros(shape),
                              tuning_cache=None)
    artifact = engine.save(compiled, folder / "model.swe", shapes=[shape])
    return {"artifact": artifact, "checkpoint": checkpoint, "checkpoint-tuned": checkpoint,
            "onnxruntime": onnx, "openvino": onnx, "c": artifact}


def build_c_example(folder: Path) -> Path | None:
    """examples/c/run_model built against the package's library, or ``None`` without a compiler."""
    import shutil

    from sparsewino import native
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or native.library_path() is None:
        return None
    library, program = native.library_path(), folder / "run_model"
    source = Path(__file__).resolve().parents[1] / "examples" / "c" / "run_model.c"
    subprocess.run([compiler, "-O2", str(source), f"-I{Path(native.__file__).parent / 'include'}",
                    str(library), f"-Wl,-rpath,{library.parent}", "-lpthread", "-o", str(program)],
                   check=True)
    return program


def available(way: str) -> bool:
    """Whether the runtime of ``way`` is installed."""
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(way)
    if module is None:
        return True
    import importlib.util
    return importlib.util.find_spec(module) is not None


def run_child(command: list[str], env: dict[str, str]) -> tuple[str, float]:
    """(stdout, wall seconds) of one process."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    total = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout + done.stderr, total


def measure(way: str, path: Path, shape: str, threads: int, repeats: int,
            c_program: Path | None) -> dict[str, float]:
    """Medians over ``repeats`` fresh processes."""
    rows = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as scratch:       # an empty tuning cache each time
            env = {**os.environ, "SPARSEWINO_CACHE_DIR": scratch, "OMP_NUM_THREADS": str(threads)}
            if way == "c":
                numbers = [int(v) for v in shape.split("x")]
                inputs = Path(scratch) / "in.f32"
                inputs.write_bytes(bytes(4 * numbers[0] * numbers[1] * numbers[2] * numbers[3]))
                command = [str(c_program), str(path), str(inputs), str(Path(scratch) / "out.f32")]
                rss = float("nan")
                if Path(GNU_TIME).is_file():          # its peak RSS, as the child's own
                    command = [GNU_TIME, "-f", "peak %M", *command]
                out, total = run_child(command, env)
                peak = [line for line in out.splitlines() if line.startswith("peak ")]
                rss = int(peak[-1].split()[1]) / 1024 if peak else rss
                row = {"import": float("nan"), "ready": float("nan"), "first": float("nan"),
                       "rss_mb": rss}
            else:
                out, total = run_child([sys.executable, "-c", CHILD, way, str(path), shape,
                                        str(threads)], env)
                row = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
        rows.append({**row, "total": total})
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18_cifar_max")
    parser.add_argument("--width", type=int, default=64, help="ResNet width (64: ResNet-18)")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--size", type=int, default=32, help="image side")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--sparsity", type=float, default=0.7,
                        help="Winograd-domain sparsity of the pruned model (0.7)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per way (3)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    shape = f"{args.batch}x{args.channels}x{args.size}x{args.size}"
    with tempfile.TemporaryDirectory() as folder:
        files = prepare(Path(folder), args)
        c_program = build_c_example(Path(folder))
        sizes = {way: files[way].stat().st_size / 1e6 for way in files}
        results = {way: measure(way, files[way], shape, args.threads, args.repeats, c_program)
                   for way in WAYS if available(way) and (way != "c" or c_program)}
    print(f"{args.model} ({'width ' + str(args.width) + ', ' if args.model.startswith('resnet') else ''}"
          f"input {shape}, Winograd-domain sparsity {args.sparsity:g}), {args.threads} thread(s), "
          f"{cpu_model()} ({cpu_flags()}), backend {engine.backend()}; median of {args.repeats} "
          "fresh processes\n")
    print("| way to start | file MB | import s | ready s | first run s | total s | peak RSS MB | "
          "total vs artifact |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = results["artifact"]["total"]
    for way, row in results.items():
        cells = [f"{row[key]:.{digits}f}" if row[key] == row[key] else "-"
                 for key, digits in (("import", 2), ("ready", 3), ("first", 3))]
        rss = f"{row['rss_mb']:.0f}" if row["rss_mb"] == row["rss_mb"] else "-"
        print(f"| {WAYS[way]} | {sizes[way]:.1f} | {' | '.join(cells)} | {row['total']:.2f} | "
              f"{rss} | {row['total'] / base:.2f}x |")
    missing = [way for way in WAYS if way not in results]
    if missing:
        print(f"\nnot measured (not installed, or no C compiler): {', '.join(missing)} "
              "(pip install -e '.[peers]')")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "cpu": cpu_model(),
                                               "flags": cpu_flags(), "results": results,
                                               "file_mb": sizes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
