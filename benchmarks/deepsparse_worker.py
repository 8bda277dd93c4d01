"""DeepSparse timing server for benchmarks/peers.py, run by the Python of a DeepSparse environment.

DeepSparse 1.8 needs numpy < 2 and onnx < 1.15, so it usually lives in its own virtual
environment (see docs/performance.md). peers.py starts this script with that environment's
Python and sends one JSON object per line on stdin; every request gets one JSON line back:

    {"cmd": "load", "id": "vgg", "path": "model.onnx", "batch": 1, "threads": 2}
        -> {"ok": true, "version": "1.8.0"}
    {"cmd": "time", "id": "vgg", "warmup": 3, "runs": 20}
        -> {"ok": true, "seconds": 0.0012}          (median wall time of engine.run)
    {"cmd": "run", "id": "vgg", "input": "x.npy", "output": "y.npy"}
        -> {"ok": true}
    {"cmd": "quit"}

Errors come back as {"ok": false, "error": "..."}. Only the standard library, numpy and
deepsparse are imported, so the script runs in a minimal environment.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")     # no network access is attempted


def main() -> None:
    import deepsparse
    import numpy as np
    from deepsparse import Engine

    engines: dict[str, tuple[object, list]] = {}
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            cmd = request["cmd"]
            if cmd == "quit":
                break
            if cmd == "load":
                engine = Engine(request["path"], batch_size=request["batch"],
                                num_cores=request["threads"])
                shapes = [list(s) for s in engine.input_shapes]
                inputs = [np.random.default_rng(0).standard_normal(s).astype(np.float32)
                          for s in shapes]
                engines[request["id"]] = (engine, inputs)
                reply = {"ok": True, "version": deepsparse.__version__}
            elif cmd == "time":
                engine, inputs = engines[request["id"]]
                for _ in range(request["warmup"]):
                    engine.run(inputs)
                times = []
                for _ in range(request["runs"]):
                    start = time.perf_counter()
                    engine.run(inputs)
                    times.append(time.perf_counter() - start)
                reply = {"ok": True, "seconds": statistics.median(times)}
            elif cmd == "run":
                engine, _ = engines[request["id"]]
                x = np.load(request["input"]).astype(np.float32)
                np.save(request["output"], engine.run([x])[0])
                reply = {"ok": True}
            else:
                reply = {"ok": False, "error": f"unknown command {cmd!r}"}
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
