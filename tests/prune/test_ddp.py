"""Masks under DistributedDataParallel (2 gloo processes): pruned entries stay zero, ranks agree."""
import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).parent / "ddp_worker.py"


def test_masks_stay_zero_and_identical_under_ddp(tmp_path):
    done = subprocess.run([sys.executable, str(WORKER), str(tmp_path)], capture_output=True, text=True,
                          timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    for layer in ("0", "2"):
        mask = first[f"{layer}.weight_mask"]
        assert 0 < mask.sum() < mask.numel()
        assert torch.all(first[f"effective.{layer}"][mask == 0] == 0)
    assert "2.weight_grad_scale" in first
    assert abs(float((first["2.weight_mask"] == 0).double().mean()) - 0.7) <= 1 / 256
