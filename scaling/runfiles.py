"""Writing the run folder from a running task: state.json updates (heartbeat, host, Slurm
job), folder permissions, one-line errors. What the files mean, and how they are read,
is the contract layer's (contract/runfolder.py). Torch-free (the Slurm job id is
contract/jobenv.py's JobEnvironment)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Optional, Union

from contract.jobenv import JobEnvironment
from contract.runfolder import now_iso, read_state, write_json


def restrict_umask() -> None:
    """Never create files or folders that group or others can write (a checkpoint that
    someone else can replace is code they can run: see docs/run-folder.md, "What is
    trusted")."""
    current = os.umask(0o022)
    os.umask(current | 0o022)


def private_dir(path: Union[str, Path]) -> Path:
    """mkdir -p without group/world write; an existing folder loses g+w and o+w."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o755)
    mode = path.stat().st_mode
    if mode & 0o022:
        path.chmod(mode & ~0o022 & 0o7777)
    return path


# ---------------------------------------------------------------------------- state.json

def update_state(run_dir: Union[str, Path], **changes) -> dict[str, Any]:
    """Read-modify-write of state.json (rank 0 only; the run's single writer)."""
    state = read_state(run_dir)
    state.pop("schema_version", None)
    state.update(changes)
    state["heartbeat"] = now_iso()
    state["host"] = socket.gethostname()
    job = slurm_job_id()
    if job:
        state["job"] = job
    write_json(Path(run_dir) / "state.json", state)
    return state


def slurm_job_id() -> Optional[str]:
    """`<array>_<task>` for array tasks, else the job id, else None."""
    return JobEnvironment.from_env().job_id

