"""The processes of one job under ``torchrun`` (or one process alone), and the device each uses.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every process it
starts, on one node or many; :func:`joined` reads them, joins the process group and chooses the
process's device once (``cuda:LOCAL_RANK`` when the job runs on CUDA), so that the same code runs
on CPU with gloo and on GPUs with NCCL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from colortrack.core.tracker import pick_device
from colortrack.scale.launch import launched_by_torchrun


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: rank r of world_size, and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def primary(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


@contextmanager
def joined(device_name: str = "auto", backend: str | None = None, timeout: timedelta | None = None) -> Iterator[Ranks]:
    """The process group of a torchrun launch (a single-process Ranks otherwise), left on exit.

    backend: None takes nccl on CUDA and gloo on CPU (training: tensors on the device); "gloo"
    coordinates a batch job whose ranks only wait for each other. timeout: how long a collective
    may wait for the slowest rank (torch's default, 30 minutes, when None).
    """
    device = pick_device(device_name)
    if not launched_by_torchrun() or dist.is_initialized():
        yield Ranks(0, 1, device)
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    dist.init_process_group(backend or ("nccl" if device.type == "cuda" else "gloo"), timeout=timeout)
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size(), device)
    finally:
        dist.destroy_process_group()
