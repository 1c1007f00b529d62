"""This process's place in a ``torchrun`` run (one process: rank 0 of 1), shared by the VAE and policy trainers."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    """Rank among ``world_size`` processes and the torch device of this one."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0 alone logs and writes files."""
        return self.rank == 0


def join_processes(device: torch.device, cleanup: contextlib.ExitStack) -> Processes:
    """Under torchrun (``WORLD_SIZE`` > 1) join the process group (gloo on the CPU, NCCL on CUDA, each rank on
    ``cuda:LOCAL_RANK``; ``cleanup`` leaves it); otherwise one process on ``device``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        cleanup.push(_leave_process_group)
    return Processes(rank, world_size, device)


def _leave_process_group(exc_type, exc, traceback) -> bool:
    """Leave the group: after a barrier when the run ended normally, so that no rank closes its connections while
    another still reads the last collective's data (gloo then aborts the reader with SIGABRT)."""
    if exc_type is None:
        dist.barrier()
    dist.destroy_process_group()
    return False
