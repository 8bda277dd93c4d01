"""Two processes on one machine under torchrun (gloo): DDP training keeps ranks identical."""
import json
import subprocess
import sys
from pathlib import Path

import torch

from sparsewino.train import load_checkpoint

SCRIPT = Path(__file__).parent / "ddp_script.py"


def test_two_process_ddp(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(SCRIPT), str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    first, second = ranks
    # every rank ran its own half of the data ...
    assert not set(first["indices"].tolist()) & set(second["indices"].tolist())
    assert len(first["indices"]) + len(second["indices"]) == 96
    assert first["steps"] == second["steps"] == 6                  # 48 images per rank / 16, x2 epochs
    # ... and ends with identical weights and masks (rank 1's extra pruning was overridden)
    for key, value in first["state"].items():
        assert torch.equal(value, second["state"][key]), key
    mask = first["state"]["features.0.weight_mask"]
    assert 0 < mask.sum() < mask.numel()
    assert first["evaluation"] == second["evaluation"] and first["evaluation"]["samples"] == 40
    saved = load_checkpoint(tmp_path / "ckpt.pt")
    assert saved["complete"] and torch.equal(saved["model"]["features.0.weight_mask"], mask)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "step"] == [2, 4, 6]   # rank 0 only
    # Leaving the group really stops the backend's threads: left running into interpreter
    # shutdown they made a rank abort now and then ("terminate called without an active
    # exception"; torch.distributed.nn.functional's defaults kept the group alive).
    for rank in range(2):
        threads = (tmp_path / f"threads{rank}.txt").read_text().split()
        assert threads == ["unknown"] or not [t for t in threads if "gloo" in t], (rank, threads)
    assert "deprecated" not in done.stderr                    # e.g. DDP's broadcast_buffers
