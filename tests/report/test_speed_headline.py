"""The speed-up headline: the median of interleaved runs, its quartiles, CPU flags, a busy warning."""
import json
import time

import torch
from torch import nn

from sparsewino.cli import main
from sparsewino.recipes import build_model, new_architecture, save_model
from sparsewino.recipes.measure import benchmark
from sparsewino.report import headline, write_report
from sparsewino.timing import BUSY_SPREAD, interleaved_times, quartiles

ARCH = new_architecture("small_vgg", {"widths": [4, "M", 8]}, 1, 10)
BENCH = {"stage": "benchmark", "kind": "benchmark", "step": "batch 8", "dense_ms": 10.0, "model_ms": 20.0,
         "compiled_ms": 4.0, "speedup_vs_dense": 2.5, "speedup_low": 2.4, "speedup_high": 2.6,
         "repeats": 10, "timing_spread": 0.05, "machine_busy": False, "cpu_flags": "avx2 fma",
         "batch_size": 8, "threads": 2}


def test_interleaved_times_take_turns():
    calls = []
    times = interleaved_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                              warmup=1, repeats=3)
    assert calls == ["a", "b"] * 4 and [len(v) for v in times.values()] == [3, 3]
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0) and quartiles([7.0]) == (7.0,) * 3


class Jittery(nn.Module):
    """A 'compiled model' whose time jumps between 1 and 20 ms: a machine under load."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        time.sleep(0.001 if self.calls % 2 else 0.02)
        return x


def test_benchmark_reports_the_spread_and_flags_a_busy_machine():
    model = build_model(ARCH).eval()
    result = benchmark(ARCH, model, Jittery(), torch.randn(2, 1, 28, 28), warmup=1, repeats=8)
    assert result["speedup_low"] <= result["speedup_vs_dense"] <= result["speedup_high"]
    assert result["timing_spread"] > BUSY_SPREAD and result["machine_busy"] is True
    assert result["repeats"] == 8 and isinstance(result["cpu_flags"], str)


def test_summary_gives_the_range_and_warns_when_busy(tmp_path):
    quiet = write_report(tmp_path / "quiet", [BENCH], plots=False).read_text()
    assert "2.50x (2.40-2.60x over 10 runs)" in quiet and "flags avx2 fma" in quiet
    assert "Warning" not in quiet
    busy = dict(BENCH, timing_spread=0.6, machine_busy=True, speedup_low=1.5, speedup_high=4.0)
    text = write_report(tmp_path / "busy", [busy], plots=False).read_text()
    assert "2.50x (1.50-4.00x over 10 runs) (machine busy: uncertain)" in text
    assert "**Warning**: the timings varied by 60% between runs" in text
    assert headline([busy])["machine_busy"] is True


def test_bench_command_prints_the_range_and_flags(tmp_path, capsys):
    path = tmp_path / "m.pt"
    save_model(path, build_model(ARCH), ARCH, input_shape=[1, 1, 28, 28])
    assert main(["bench", str(path), "--batch-size", "2", "--warmup", "0", "--repeats", "4"]) == 0
    out = capsys.readouterr().out
    assert "median of 4 interleaved runs" in out and "x over 4 runs)" in out
    assert main(["bench", str(path), "--batch-size", "2", "--warmup", "0", "--repeats", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"speedup_low", "speedup_high", "timing_spread", "machine_busy", "cpu_flags"} <= set(result)
