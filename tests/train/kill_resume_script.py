"""Run the tiny training in a fresh process; SIGKILL itself at step --kill-at (a real crash)."""
import argparse
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import tiny_config, tiny_loaders, tiny_model  # noqa: E402

from sparsewino.train import fit  # noqa: E402


class Killer:
    def __init__(self, at):
        self.at = at

    def after_step(self, model, step):
        if step == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("output")
    parser.add_argument("--kill-at", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = tiny_model()
    train, test = tiny_loaders()
    result = fit(model, train, tiny_config(), eval_loader=test, callbacks=[Killer(args.kill_at)],
                 checkpoint=args.checkpoint)
    torch.save({"state": model.state_dict(), "evaluation": result.evaluation,
                "resumed_at": result.resumed_at_step}, args.output)
