"""Who am I in the job: ranks from torchrun, else Slurm, else a single process (DESIGN.md)."""

from __future__ import annotations

import gc
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    source: str = "single"  # torchrun | slurm | single

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def first_slurm_host(nodelist: str) -> str:
    """First host of SLURM_JOB_NODELIST (scontrol when available, else parse `a[1-3,5]`)."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                             text=True, timeout=10, check=True).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.SubprocessError):
        pass
    match = re.match(r"^([^\[,]+)(?:\[([0-9]+))?", nodelist)
    if not match:
        return nodelist
    return match.group(1) + (match.group(2) or "")


def resolve_ranks(environ=None) -> tuple[int, int, int, str]:
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return (int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)),
                "torchrun")
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return (int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]),
                int(env.get("SLURM_LOCALID", 0)), "slurm")
    return 0, 1, 0, "single"


def setup(device: str = "auto", timeout_s: int = 1800) -> DistEnv:
    """Initialise the process group (gloo on CPU, NCCL on GPU) when there are several ranks."""
    rank, world, local, source = resolve_ranks()
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not tdist.is_initialized():
        if source == "slurm":
            os.environ.setdefault("MASTER_ADDR", first_slurm_host(os.environ["SLURM_JOB_NODELIST"]))
            job = int(os.environ.get("SLURM_JOB_ID", "0"))
            os.environ.setdefault("MASTER_PORT", str(20000 + job % 20000))
        tdist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world,
                                 timeout=timedelta(seconds=timeout_s))
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=dev, source=source)


def teardown(clean: bool = True, timeout_s: float = 120.0) -> None:
    """Destroy the process group in an order that cannot abort the process at exit.

    The rare "terminate called without an active exception" of 2-rank gloo jobs comes from
    the group's C++ threads being destroyed during interpreter shutdown, in no fixed order:
    a DDP/FSDP wrapper caught in a reference cycle keeps the group alive past
    destroy_process_group, and a rank that leaves first closes the sockets its peer may
    still be using. So, after a clean run, ranks first meet at a barrier (bounded on gloo,
    so a lost peer cannot hang us), then the cycles are collected so the group is freed now,
    while everything it needs still exists. After an error the barrier is skipped (the
    peers may be inside another collective).
    """
    if not tdist.is_initialized():
        return
    if clean and tdist.get_world_size() > 1:
        try:
            if tdist.get_backend() == "gloo":
                tdist.monitored_barrier(timeout=timedelta(seconds=timeout_s))
            else:
                tdist.barrier()
        except RuntimeError:
            pass  # a peer is gone: tear down anyway
    gc.collect()
    tdist.destroy_process_group()
    gc.collect()


def all_reduce_max(value: float, env: DistEnv) -> float:
    if not env.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return float(t.item())


def all_reduce_mean(value: float, env: DistEnv) -> float:
    if not env.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    tdist.all_reduce(t)
    return float(t.item()) / env.world_size


def barrier(env: DistEnv) -> None:
    if env.distributed:
        tdist.barrier()
