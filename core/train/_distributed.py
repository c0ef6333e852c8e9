"""Just enough torch.distributed for ``torchrun``: set-up, a few collectives, rank-0 writes."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from core.device import select_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (world_size 1 = not distributed)."""

    rank: int
    world_size: int
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes checkpoints and reports progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def setup(device_pref: str) -> DistInfo:
    """Join the process group started by ``torchrun`` (or one already initialised) and pick the device.

    Args:
        device_pref: See ``core.device.select_device``.

    Returns:
        Rank, world size, device, and whether this call created the process group.
    """
    owns = False
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = select_device(device_pref)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        owns = True
        logger.info(
            "joined process group: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend
        )
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    device = select_device(device_pref)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return DistInfo(rank=rank, world_size=world, device=device, owns_group=owns)


def teardown(info: DistInfo) -> None:
    """Destroy the process group if ``setup`` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def _collective_device(info: DistInfo) -> torch.device:
    return info.device if dist.get_backend() == "nccl" else torch.device("cpu")


def any_flag(info: DistInfo, *flags: bool) -> list[bool]:
    """For each flag, whether it is True on any process (one all-reduce for all flags)."""
    if not info.distributed:
        return list(flags)
    tensor = torch.tensor([float(f) for f in flags], device=_collective_device(info))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def sum_values(info: DistInfo, *values: float) -> list[float]:
    """Sum each value over all processes."""
    if not info.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device(info))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order, on every process."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op when not distributed)."""
    if info.distributed:
        dist.barrier()


def broadcast_buffers(info: DistInfo, module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (e.g. BatchNorm running statistics) to every process.

    DDP keeps parameters identical but each rank updates its buffers in its own last forward pass.
    """
    if not info.distributed:
        return
    for buffer in module.buffers():
        if dist.get_backend() == "nccl" or buffer.device.type == "cpu":
            dist.broadcast(buffer.data, src=0)
        else:
            staged = buffer.data.cpu()
            dist.broadcast(staged, src=0)
            buffer.data.copy_(staged)
