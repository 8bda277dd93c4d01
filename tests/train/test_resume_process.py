"""A training process killed with SIGKILL mid-epoch and restarted ends exactly like an uninterrupted one."""
import signal
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import tiny_config, tiny_loaders, tiny_model  # noqa: E402

from sparsewino.train import fit  # noqa: E402

SCRIPT = Path(__file__).parent / "kill_resume_script.py"


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    checkpoint, output = tmp_path / "ckpt.pt", tmp_path / "out.pt"
    killed = subprocess.run([sys.executable, str(SCRIPT), str(checkpoint), str(output), "--kill-at", "15"],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoint.is_file() and not output.exists()
    assert not list(tmp_path.glob(".*.tmp"))
    resumed = subprocess.run([sys.executable, str(SCRIPT), str(checkpoint), str(output)],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    result = torch.load(output, weights_only=True)
    assert result["resumed_at"] == 12                       # last checkpoint: step 12, mid-epoch 2

    model = tiny_model()
    train, test = tiny_loaders()
    reference = fit(model, train, tiny_config(), eval_loader=test)
    assert result["evaluation"] == reference.evaluation
    for key, value in model.state_dict().items():
        assert torch.equal(value, result["state"][key]), key
