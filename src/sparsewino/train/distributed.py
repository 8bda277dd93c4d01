"""torch.distributed helpers: init from torchrun's environment, DDP wrapping, reductions."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# DDP imports torch.distributed.nn.functional, whose functions take ``group=group.WORLD`` as
# default arguments, bound when the module is first imported. Imported after
# init_process_group, they keep the process group alive after destroy_process_group: its gloo
# threads then run on into interpreter shutdown and now and then abort the process ("terminate
# called without an active exception", the flaky two-process test). Imported here, before any
# group exists, the defaults are None (the default group at call time) and teardown is real.
import torch.distributed.nn.functional  # noqa: F401  (must come before any process group)
from torch import nn

from ..errors import UserError
from ..prune.model import unwrap_model

__all__ = ["DistContext", "DeviceError", "init_distributed", "wrap_model", "unwrap_model", "all_reduce_sum",
           "sync_buffers", "barrier", "shutdown_distributed", "resolve_device"]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: rank, world size and device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that writes files and prints)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


class DeviceError(UserError, ValueError):
    """A device name torch does not know, or a device this machine does not have."""


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``"auto"``/``None`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU.

    Raises:
        DeviceError: ``device`` is not a device name, or names CUDA on a machine without it.
    """
    if device is None or str(device) == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise DeviceError(f"device {str(device)!r} is not a device name ({exc}); use auto, cpu, "
                          "cuda or cuda:N") from None
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {str(device)!r} requested but CUDA is not available on this "
                          "machine; use --device cpu (or auto)")
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {str(device)!r}: sparsewino runs on cpu or cuda")
    return device


def init_distributed(device: str | torch.device | None = "auto") -> DistContext:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1), else run alone.

    Backend: NCCL on CUDA, gloo on CPU. Idempotent: a second call returns the same context.

    Examples:
        >>> ctx = init_distributed()        # under `torchrun --nproc-per-node 2 ...`  # doctest: +SKIP
        >>> ctx.rank, ctx.world_size                                    # doctest: +SKIP
        (0, 2)
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world <= 1:
        return DistContext(device=resolved)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, resolved, backend)


def shutdown_distributed() -> None:
    """Leave the process group (no-op when not distributed).

    Call it before the process exits: it stops the backend's threads while the interpreter is
    still whole (the CLI does; see the import note at the top of this module).
    """
    if dist.is_available() and dist.is_initialized():
        # Every rank reaches this point before any tears its backend down: a rank destroying
        # its gloo group while its peer still has the connection open hung, now and then, in
        # the peer's destroy (seen in tests/prune/test_ddp.py under load).
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model``.

    Buffers (BatchNorm statistics and pruning masks) are broadcast from rank 0 at every forward
    pass (``forward_sync_buffers``), so every rank uses rank 0's masks.
    """
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=True)


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``values`` over ranks (returned unchanged on a single process)."""
    if ctx.distributed:
        values = values.to(ctx.device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def sync_buffers(model: nn.Module, ctx: DistContext) -> int:
    """Copy every buffer (pruning masks, BatchNorm statistics) from rank 0 to all ranks.

    DDP broadcasts buffers at the start of each forward pass; after the last training step
    (and before evaluation) the ranks' BatchNorm statistics still differ until this is called.

    Returns:
        The number of buffers broadcast (0 when not distributed).
    """
    if not ctx.distributed:
        return 0
    count = 0
    for buffer in unwrap_model(model).buffers():
        if buffer.dtype == torch.bool:
            staged = buffer.data.to(torch.uint8)
            dist.broadcast(staged, src=0)
            buffer.data.copy_(staged.bool())
        else:
            dist.broadcast(buffer.data, src=0)
        count += 1
    return count


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op alone)."""
    if ctx.distributed:
        dist.barrier()
