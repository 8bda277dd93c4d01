"""The CPU runtimes benchmarks/peers.py compares against: ONNX Runtime, OpenVINO, DeepSparse.

Each peer turns an ONNX file into something that can be timed and run. ONNX Runtime and
OpenVINO run in this process (``pip install 'sparsewino[peers]'``). DeepSparse 1.8 wants
numpy < 2 and onnx < 1.15, so it runs in its own Python (a separate virtual environment) as a
small server (``deepsparse_worker.py``); pass that Python with ``--deepsparse-python`` or the
``SPARSEWINO_DEEPSPARSE_PYTHON`` variable. A missing peer is reported and skipped, never
faked.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["export_onnx", "OnnxRuntimePeer", "OpenVinoPeer", "DeepSparsePeer", "peer_versions",
           "default_deepsparse_python"]

HERE = Path(__file__).resolve().parent


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Export ``module`` for the peers: TorchScript exporter (``dynamo=False``), opset 13
    (what DeepSparse 1.8 reads), fixed shapes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(path), dynamo=False, opset_version=13,
                          input_names=["x"], output_names=["y"], do_constant_folding=True)
    return path


def _version(name: str) -> str | None:
    try:
        return importlib.import_module(name).__version__
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None


def peer_versions() -> dict[str, str | None]:
    """Versions of the in-process peers (``None``: not installed)."""
    return {"onnxruntime": _version("onnxruntime"), "openvino": _version("openvino")}


class OnnxRuntimePeer:
    """ONNX Runtime, CPU execution provider, all graph optimisations, ``threads`` intra-op."""

    name = "onnxruntime"

    def __init__(self, threads: int) -> None:
        import onnxruntime as ort
        self.ort, self.threads = ort, threads
        self.version = ort.__version__

    def load(self, path: Path, example: torch.Tensor) -> Callable[[], np.ndarray]:
        ort = self.ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        # zero-copy: the input and the output are bound once to their buffers
        binding = session.io_binding()
        x = example.contiguous().numpy()
        binding.bind_cpu_input(session.get_inputs()[0].name, x)
        binding.bind_output(session.get_outputs()[0].name, "cpu")

        def run() -> np.ndarray:
            session.run_with_iobinding(binding)
            return binding.get_outputs()[0].numpy()
        return run


class OpenVinoPeer:
    """OpenVINO on CPU, latency hint; ``precision="f32"`` forces fp32, ``None`` keeps the
    runtime's default (bf16 on CPUs with AVX512_BF16/AMX, else fp32; :attr:`precision` says)."""

    def __init__(self, threads: int, precision: str | None) -> None:
        import openvino as ov
        self.ov, self.threads, self.requested = ov, threads, precision
        self.core = ov.Core()
        self.version = ov.__version__
        self.name = "openvino-" + (precision or "default")
        self.precision = "?"

    def load(self, path: Path, example: torch.Tensor) -> Callable[[], np.ndarray]:
        config = {"INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY",
                  "NUM_STREAMS": 1}
        if self.requested:
            config["INFERENCE_PRECISION_HINT"] = self.requested
        compiled = self.core.compile_model(str(path), "CPU", config)
        hint = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.precision = next((short for long, short in (("bfloat16", "bf16"), ("float16", "fp16"),
                                                          ("float32", "fp32")) if long in hint), hint)
        request = compiled.create_infer_request()
        request.set_input_tensor(0, self.ov.Tensor(example.contiguous().numpy(), shared_memory=True))

        def run() -> np.ndarray:                          # zero-copy input, output read in place
            request.infer()
            return request.get_output_tensor(0).data
        return run


def default_deepsparse_python() -> str | None:
    """The DeepSparse environment's Python: ``SPARSEWINO_DEEPSPARSE_PYTHON``, else
    ``.venv-deepsparse/bin/python`` in the repository, if it exists."""
    explicit = os.environ.get("SPARSEWINO_DEEPSPARSE_PYTHON")
    if explicit:
        return explicit
    local = HERE.parent / ".venv-deepsparse" / "bin" / "python"
    return str(local) if local.exists() else None


class DeepSparsePeer:
    """DeepSparse in its own Python, driven through ``deepsparse_worker.py``."""

    name = "deepsparse"

    def __init__(self, python: str, threads: int) -> None:
        self.threads = threads
        env = dict(os.environ, NM_DISABLE_ANALYTICS="1")
        self.process = subprocess.Popen([python, str(HERE / "deepsparse_worker.py")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=env)
        self.version = "?"
        self._count = 0

    def _ask(self, **request) -> dict:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the DeepSparse worker exited (status {self.process.poll()})")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"DeepSparse: {reply.get('error')}")
        return reply

    def load(self, path: Path, batch: int) -> str:
        self._count += 1
        handle = f"m{self._count}"
        self.version = self._ask(cmd="load", id=handle, path=str(path), batch=batch,
                                 threads=self.threads)["version"]
        return handle

    def time(self, handle: str, warmup: int, runs: int) -> float:
        return float(self._ask(cmd="time", id=handle, warmup=warmup, runs=runs)["seconds"])

    def run(self, handle: str, x: torch.Tensor) -> torch.Tensor:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
            np.save(src, x.numpy())
            self._ask(cmd="run", id=handle, input=str(src), output=str(dst))
            return torch.from_numpy(np.load(dst))

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")  # type: ignore[union-attr]
                self.process.stdin.flush()  # type: ignore[union-attr]
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()


def telemetry_off() -> None:
    """Opt out of OpenVINO's telemetry (its thread deadlocks beside DeepSparse in one process)."""
    os.environ.setdefault("OPENVINO_TELEMETRY_DISABLE", "1")
    tool = shutil.which("opt_in_out") or str(Path(sys.executable).with_name("opt_in_out"))
    if Path(tool).exists():
        subprocess.run([tool, "--opt_out"], capture_output=True, timeout=60, check=False)


def start_peers(threads: int, deepsparse_python: str | None, log=print) -> dict[str, object]:
    """Every peer that can run here, by name; missing ones are logged and left out."""
    telemetry_off()
    peers: dict[str, object] = {}
    for factory in (lambda: OnnxRuntimePeer(threads), lambda: OpenVinoPeer(threads, "f32"),
                    lambda: OpenVinoPeer(threads, None)):
        try:
            peer = factory()
        except ImportError as exc:
            log(f"peer skipped ({exc}); install with: pip install 'sparsewino[peers]'")
            continue
        peers[peer.name] = peer
    if deepsparse_python:
        try:
            peers["deepsparse"] = DeepSparsePeer(deepsparse_python, threads)
        except OSError as exc:
            log(f"DeepSparse skipped: cannot start {deepsparse_python}: {exc}")
    else:
        log("DeepSparse skipped: no DeepSparse Python (see --deepsparse-python)")
    return peers


if __name__ == "__main__":          # a quick self-check: which peers run here
    found = start_peers(torch.get_num_threads(), default_deepsparse_python())
    print(sorted(found), peer_versions(), file=sys.stderr)
    for peer in found.values():
        if isinstance(peer, DeepSparsePeer):
            peer.close()
