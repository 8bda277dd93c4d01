"""Two gloo processes train a pruned model under DDP and save their final states (run by test_ddp.py)."""
import faulthandler
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sparsewino import prune as sp
from sparsewino.nn import WinogradConv2d
from sparsewino.train import shutdown_distributed  # imported before any process group exists


def run(rank: int, world: int, folder: str) -> None:
    faulthandler.dump_traceback_later(150, exit=True)     # a hang shows where, before the test's timeout
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=world)
    torch.manual_seed(0)                                   # same initial model on every rank
    model = nn.Sequential(WinogradConv2d(2, 4, 3, padding=1, tile=2), nn.ReLU(),
                          WinogradConv2d(4, 4, 3, padding=1, tile=2, domain="winograd"),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    sp.spatial_winograd(model[0], 0.5)
    sp.winograd_domain(model[2], 0.5, grad_power=1.5)      # masks and gradient scaling
    network = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    torch.manual_seed(100 + rank)                          # each rank sees its own data
    for step in range(12):
        if step == 6:                                      # prune further in the middle of training
            sp.prune_model(model, "winograd_domain", 0.7)
        loss = network(torch.randn(4, 2, 6, 6)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["effective.0"] = sp.effective_weight(model[0]).detach().clone()
    state["effective.2"] = sp.effective_weight(model[2]).detach().clone()
    torch.save(state, Path(folder) / f"rank{rank}.pt")
    shutdown_distributed()


if __name__ == "__main__":
    mp.spawn(run, args=(2, sys.argv[1]), nprocs=2, join=True)
