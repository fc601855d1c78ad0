"""Where this process runs: one object for everything Slurm and torchrun set (docs/design.md,
runtime contract), modelled on submitit's `JobEnvironment`.

Nothing else reads `SLURM_*`, `RANK`, `WORLD_SIZE`, `LOCAL_RANK` or `MASTER_ADDR/PORT`:
`JobEnvironment.from_env()` reads them once, and the rules that combine them live here
(which launcher's ranks win, the `<array>_<task>` id a requeue names, the node list's
hosts, rank 0's address and port). The task script's shell needs two of the rules before
Python starts; `SHELL_JOB_ID` and `SHELL_RESTARTS` are their shell spelling, rendered into
it, and a test checks both spellings agree. Stdlib only (no torch), so `slurm/`, the task
template and the engine all use the same object.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

DEFAULT_MASTER_ADDR, DEFAULT_MASTER_PORT = "127.0.0.1", 29500
PORT_BASE = 20000

SHELL_JOB_ID = ("${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-local}}"
                "${SLURM_ARRAY_TASK_ID:+_$SLURM_ARRAY_TASK_ID}")
"""`JobEnvironment.job_id` in bash (`local` outside Slurm), for the task script's log lines."""
SHELL_RESTARTS = "${SLURM_RESTART_COUNT:-0}"
"""`JobEnvironment.restart_count` in bash."""


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is invalid: the launcher must set it to a whole "
                         "number (unset it to run as a single process)") from None


def _split_groups(nodelist: str) -> list[str]:
    """`a[1-3,5],b2` -> ['a[1-3,5]', 'b2']: commas outside brackets separate hosts."""
    groups, depth, start = [], 0, 0
    for i, char in enumerate(nodelist):
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            groups.append(nodelist[start:i])
            start = i + 1
    groups.append(nodelist[start:])
    return [g for g in groups if g]


def _expand_range(spec: str) -> list[str]:
    """`01-03,7` -> ['01', '02', '03', '7'] (zero padding kept, as Slurm writes it)."""
    out = []
    for item in spec.split(","):
        low, dash, high = item.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"not a host range: {spec!r}")
        if not dash:
            out.append(low)
            continue
        out += [str(i).zfill(len(low)) for i in range(int(low), int(high) + 1)]
    return out


def expand_hostlist(nodelist: str) -> list[str]:
    """Slurm's compressed host list, expanded without Slurm: `gpu[07-08],login1` ->
    ['gpu07', 'gpu08', 'login1']; several bracket groups multiply
    (`r[1-2]n[1-2]` -> r1n1 r1n2 r2n1 r2n2). A list it cannot read is returned whole."""
    hosts = []
    try:
        for group in _split_groups(nodelist):
            parts = re.split(r"\[([^\[\]]*)\]", group)  # odd items: inside brackets
            if any("[" in p or "]" in p for p in parts[::2]):
                return [nodelist]  # an unbalanced bracket
            choices = [_expand_range(p) if i % 2 else [p] for i, p in enumerate(parts)]
            hosts += ["".join(c) for c in itertools.product(*choices)]
    except ValueError:
        return [nodelist]
    return hosts or [nodelist]


def hostnames(nodelist: str) -> list[str]:
    """The hosts of a node list: `scontrol show hostnames` where Slurm is installed (it knows
    every syntax the cluster uses), else `expand_hostlist`."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                             text=True, timeout=10, check=True).stdout.split()
        if out:
            return out
    except (OSError, subprocess.SubprocessError):
        pass
    return expand_hostlist(nodelist)


def master_port_for(raw_job_id: Optional[str]) -> int:
    """The port every rank of one Slurm job derives alike: 20000 + job id % 20000. Array
    tasks have their own SLURM_JOB_ID, so two tasks sharing a first host differ."""
    return PORT_BASE + int(raw_job_id or 0) % PORT_BASE


@dataclass(frozen=True)
class JobEnvironment:
    """This process's place: the Slurm job (if any) and its rank among the job's ranks.

    Ranks come from torchrun (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`) when it set them, else
    from srun (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`) when the step has more than
    one task, else this is a single process (`source` says which)."""

    raw_job_id: Optional[str] = None      # SLURM_JOB_ID (each array task has its own)
    array_job_id: Optional[str] = None    # SLURM_ARRAY_JOB_ID
    array_task_id: Optional[str] = None   # SLURM_ARRAY_TASK_ID
    restart_count: int = 0                # SLURM_RESTART_COUNT: times Slurm requeued the job
    nodelist: Optional[str] = None        # SLURM_JOB_NODELIST, compressed (`gpu[07-08]`)
    num_nodes: int = 1                    # SLURM_JOB_NUM_NODES (or SLURM_NNODES)
    node_rank: int = 0                    # SLURM_NODEID
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    source: str = "single"                # torchrun | slurm | single
    given_master_addr: Optional[str] = field(default=None, repr=False)   # MASTER_ADDR
    given_master_port: Optional[int] = field(default=None, repr=False)   # MASTER_PORT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> JobEnvironment:
        env = environ
        if "RANK" in env and "WORLD_SIZE" in env:
            rank, world = _int(env, "RANK", 0), _int(env, "WORLD_SIZE", 1)
            local, source = _int(env, "LOCAL_RANK", 0), "torchrun"
        elif "SLURM_PROCID" in env and _int(env, "SLURM_NTASKS", 1) > 1:
            rank, world = _int(env, "SLURM_PROCID", 0), _int(env, "SLURM_NTASKS", 1)
            local, source = _int(env, "SLURM_LOCALID", 0), "slurm"
        else:
            rank, world, local, source = 0, 1, 0, "single"
        port = env.get("MASTER_PORT") or None
        return cls(raw_job_id=env.get("SLURM_JOB_ID") or None,
                   array_job_id=env.get("SLURM_ARRAY_JOB_ID") or None,
                   array_task_id=env.get("SLURM_ARRAY_TASK_ID") or None,
                   restart_count=_int(env, "SLURM_RESTART_COUNT", 0),
                   nodelist=env.get("SLURM_JOB_NODELIST") or None,
                   num_nodes=_int(env, "SLURM_JOB_NUM_NODES", _int(env, "SLURM_NNODES", 1)),
                   node_rank=_int(env, "SLURM_NODEID", 0),
                   rank=rank, world_size=world, local_rank=local, source=source,
                   given_master_addr=env.get("MASTER_ADDR") or None,
                   given_master_port=_int(env, "MASTER_PORT", 0) if port else None)

    @property
    def is_slurm(self) -> bool:
        """Inside a Slurm job (batch script or srun step)."""
        return self.raw_job_id is not None

    @property
    def job_id(self) -> Optional[str]:
        """`<array>_<task>` for an array task, else the job id; None outside Slurm. What
        state.json records and what `scontrol requeue` names."""
        if self.array_job_id and self.array_task_id:
            return f"{self.array_job_id}_{self.array_task_id}"
        return self.raw_job_id

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @cached_property
    def hostnames(self) -> list[str]:
        """The job's hosts in Slurm's order (empty outside Slurm)."""
        return hostnames(self.nodelist) if self.nodelist else []

    @property
    def master_addr(self) -> str:
        """Where rank 0 listens: MASTER_ADDR when set (torchrun sets it; a cluster profile
        may name another interface), else the job's first host for srun ranks."""
        if self.given_master_addr:
            return self.given_master_addr
        if self.source == "slurm" and self.hostnames:
            return self.hostnames[0]
        return DEFAULT_MASTER_ADDR

    @property
    def master_port(self) -> int:
        """MASTER_PORT when set, else `master_port_for(job)` for srun ranks."""
        if self.given_master_port:
            return self.given_master_port
        if self.source == "slurm":
            return master_port_for(self.raw_job_id)
        return DEFAULT_MASTER_PORT


def without_slurm(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of `environ` with Slurm's variables removed: a local run started inside an
    allocation must not pose as an array task (or requeue it)."""
    return {k: v for k, v in environ.items() if not k.startswith("SLURM_")}
