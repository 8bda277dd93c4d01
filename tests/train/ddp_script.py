"""Run under torchrun: tiny DDP training with a mask-changing callback; each rank saves its state
and, after leaving the process group, the names of its remaining threads."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import tiny_config, tiny_loaders, tiny_model  # noqa: E402

from sparsewino.train import MetricsLog, fit, init_distributed, shutdown_distributed  # noqa: E402


class RankDependentPruner:
    """Zeroes small weights of features.0 after each step; rank 1 also zeroes a different entry,
    which DDP's buffer broadcast must undo so that every rank uses rank 0's mask."""

    def __init__(self, rank):
        self.rank = rank

    def after_step(self, model, step):
        conv = model.features[0]
        with torch.no_grad():
            conv.weight_mask.mul_((conv.weight_orig.abs() > 0.05).float())
            if self.rank == 1:
                conv.weight_mask.view(-1)[step % conv.weight_mask.numel()] = 0


if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    assert ctx.world_size == 2 and ctx.backend == "gloo"
    model = tiny_model()
    train, test = tiny_loaders(rank=ctx.rank, world=ctx.world_size)
    result = fit(model, train, tiny_config(epochs=2), eval_loader=test, ctx=ctx,
                 callbacks=[RankDependentPruner(ctx.rank)], checkpoint=out / "ckpt.pt",
                 metrics=MetricsLog(out / "metrics.jsonl", enabled=ctx.is_main))
    torch.save({"state": model.state_dict(), "evaluation": result.evaluation,
                "indices": train.indices(0), "steps": result.steps}, out / f"rank{ctx.rank}.pt")
    shutdown_distributed()
    tasks = Path("/proc/self/task")                  # Linux: the process's threads
    names = [(task / "comm").read_text().strip() for task in tasks.iterdir()] if tasks.is_dir() else []
    (out / f"threads{ctx.rank}.txt").write_text("\n".join(sorted(names)) if names else "unknown")
