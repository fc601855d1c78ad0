"""Who am I in the job: ranks from torchrun, else Slurm, else a single process (docs/design.md)."""

from __future__ import annotations

import gc
import logging
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as tdist

from contract.jobenv import JobEnvironment
from scaling import logs

log = logging.getLogger(__name__)


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    source: str = "single"  # torchrun | slurm | single
    timeout_s: int = 1800   # collective timeout of the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


@dataclass(frozen=True)
class Rendezvous:
    """What one rank will do at start-up: its place, the backend, where rank 0 listens."""

    rank: int
    world_size: int
    local_rank: int
    source: str            # torchrun | slurm | single
    backend: str           # nccl (CUDA) | gloo (CPU)
    master_addr: str
    master_port: int


def rendezvous(environ=None, use_cuda: bool = False) -> Rendezvous:
    """This rank's place and rank 0's address, as `contract.jobenv.JobEnvironment` reads
    them: torchrun's variables, else Slurm's (one srun task per device, rank 0 on the first
    host of the node list, port 20000 + job id % 20000), else one process. MASTER_ADDR /
    MASTER_PORT already in the environment win (torchrun sets them; a cluster profile may
    name another interface's hostname)."""
    job = JobEnvironment.from_env(os.environ if environ is None else environ)
    return Rendezvous(rank=job.rank, world_size=job.world_size, local_rank=job.local_rank,
                      source=job.source, backend="nccl" if use_cuda else "gloo",
                      master_addr=job.master_addr, master_port=job.master_port)


def setup(device: str = "auto", timeout_s: int = 1800) -> DistEnv:
    """Initialise the process group (gloo on CPU, NCCL on GPU) when there are several ranks.
    `timeout_s` bounds every collective: a rank whose peer (or its node) stopped answering
    fails after it instead of hanging (resources.collective_timeout_s)."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    rdv = rendezvous(use_cuda=use_cuda)
    logs.set_rank(rdv.rank, rdv.world_size)
    if use_cuda:
        torch.cuda.set_device(rdv.local_rank)
        dev = torch.device("cuda", rdv.local_rank)
    else:
        dev = torch.device("cpu")
    if rdv.world_size > 1 and not tdist.is_initialized():
        if rdv.source == "slurm":
            os.environ["MASTER_ADDR"] = rdv.master_addr
            os.environ["MASTER_PORT"] = str(rdv.master_port)
            log.info("wsl-scaling: rank %d/%d (local %d) on %s: %s rendezvous at %s:%s, "
                     "collective timeout %s s", rdv.rank, rdv.world_size, rdv.local_rank,
                     socket.gethostname(), rdv.backend, rdv.master_addr, rdv.master_port,
                     timeout_s, extra=logs.ALL_RANKS)
        tdist.init_process_group(rdv.backend, rank=rdv.rank, world_size=rdv.world_size,
                                 timeout=timedelta(seconds=timeout_s))
    return DistEnv(rank=rdv.rank, world_size=rdv.world_size, local_rank=rdv.local_rank,
                   device=dev, source=rdv.source, timeout_s=timeout_s)


def failure_line(exc: BaseException, env: DistEnv) -> Optional[str]:
    """A clear one-line error for a failed collective (a peer rank or its node stopped
    answering), or None when `exc` is something else."""
    if not env.distributed or not isinstance(exc, RuntimeError):
        return None
    text = " ".join(str(exc).split())
    low = text.lower()
    if "timed out" in low or "timeout" in low:
        what = (f"a collective timed out after {env.timeout_s} s "
                "(resources.collective_timeout_s)")
    elif any(k in low for k in ("connection closed by peer", "connection reset",
                                "broken pipe", "connection refused")):
        what = "a collective lost its connection to a peer rank"
    else:
        return None
    nodes = JobEnvironment.from_env().nodelist
    where = f" (nodes {nodes})" if nodes else ""
    return (f"DistributedError: {what} on rank {env.rank}/{env.world_size} "
            f"({socket.gethostname()}): another rank{where} or the network between them "
            "stopped answering; once the nodes are healthy, `scaling submit --retry_failed` "
            f"resumes it from its last checkpoint [{text[:160]}]")[:420]


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
