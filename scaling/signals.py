"""Preemption and cancellation, as docs/design.md's runtime contract says.

SIGUSR2 (Slurm's time-limit / preemption warning): finish the step, checkpoint, mark
`preempted`, requeue the array task. SIGTERM: finish the step, checkpoint, exit; the phase
stays `preempted` if SIGUSR2 came first (a requeue itself sends SIGTERM), else `cancelled`.
Handlers only set flags; the loop acts on them at a step boundary, agreed by all ranks.
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any

from contract.jobenv import JobEnvironment

PREEMPT, CANCEL = 1.0, 2.0


class SignalFlags:
    def __init__(self) -> None:
        self.preempted = False
        self.terminated = False
        self._previous: dict[int, Any] = {}  # signal -> its handler before install()

    def install(self) -> SignalFlags:
        for sig, handler in ((signal.SIGUSR2, self._on_usr2), (signal.SIGTERM, self._on_term)):
            self._previous[sig] = signal.signal(sig, handler)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_usr2(self, signum, frame) -> None:
        self.preempted = True

    def _on_term(self, signum, frame) -> None:
        self.terminated = True

    @property
    def code(self) -> float:
        """What this rank saw: 0 nothing, 1 preempt, 2 terminate (max-reduced over ranks)."""
        if self.preempted:
            return PREEMPT
        return CANCEL if self.terminated else 0.0


def requeue_self() -> bool:
    """Ask Slurm to requeue this array task (or job); False outside Slurm or on failure."""
    job = JobEnvironment.from_env().job_id
    if not job:
        return False
    try:
        subprocess.run(["scontrol", "requeue", job], check=True, timeout=30,
                       capture_output=True)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
