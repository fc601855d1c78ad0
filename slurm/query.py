"""Asking Slurm about jobs: squeue for what slurmctld still holds, sacct where accounting
exists. Array tasks are keyed `<array>_<task>`, plain jobs by their id. Torch-free."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable

from contract.errors import RunError

ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT")


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def queue_states(required: bool = False) -> dict[str, tuple[str, str]]:
    """{job key: (state, reason)} of every job slurmctld holds, finished ones included
    (for MinJobAge after they end). {} when Slurm is absent, unless `required`."""
    if shutil.which("squeue") is None:
        if required:
            raise RunError("squeue not found: this needs a Slurm client on this machine")
        return {}
    try:
        proc = _run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r"])
    except (OSError, subprocess.SubprocessError) as exc:
        if required:
            raise RunError(f"squeue failed: {exc}") from None
        return {}
    if proc.returncode != 0:
        if required:
            raise RunError(f"squeue failed: {' '.join(proc.stderr.split())}: is the Slurm "
                           "controller reachable?")
        return {}
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            out[parts[0]] = (parts[1], parts[2])
    return out


def accounting_states(jobs: Iterable[str]) -> dict[str, tuple[str, str]]:
    """{job key: (state, exit code)} from sacct; {} without accounting storage."""
    jobs = sorted(set(jobs))
    if not jobs or shutil.which("sacct") is None:
        return {}
    try:
        proc = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(jobs),
                     "-o", "JobID,State,ExitCode"])
    except (OSError, subprocess.SubprocessError):
        return {}
    if proc.returncode != 0 or "accounting storage is disabled" in proc.stderr + proc.stdout:
        return {}
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            out[parts[0]] = (parts[1].split()[0], parts[2])  # "CANCELLED by 0" -> CANCELLED
    return out
