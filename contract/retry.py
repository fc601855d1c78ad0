"""When a run's phase runs again: one rule for the local executor (slurm/local.py),
`scaling submit` (slurm/submit.py) and a preempted task's self-requeue (scaling/engine.py).

A phase that has not ended runs (again) on the next `scaling run --local` or `scaling
submit`: `pending`, `running` (its process died without saying so), `preempted` and
`cancelled` resume from their newest checkpoint. `failed` reruns only on request
(`--retry_failed`): a failure is a bug or bad input until someone says otherwise; `done` never
reruns. Within one submission, a preempted task requeues itself while it has started fewer
than `resources.max_attempts` times (state.json counts the starts). Stdlib only.
"""

from __future__ import annotations

from typing import Optional

UNFINISHED = ("pending", "running", "preempted", "cancelled")


def should_run(phase_state: str, retry_failed: bool = False) -> bool:
    """Whether a phase in `phase_state` is (re)started by the executor or by submit."""
    return phase_state in UNFINISHED or (retry_failed and phase_state == "failed")


def next_phase(state: dict, retry_failed: bool = False) -> Optional[str]:
    """The phase a run starts with next (`train`, `transfer` once its trunk is `done`), or
    None when neither is to run."""
    if should_run(state["train"], retry_failed):
        return "train"
    if state["train"] == "done" and should_run(state["transfer"], retry_failed):
        return "transfer"
    return None


def may_requeue(attempts: int, max_attempts: int) -> bool:
    """Whether a preempted task that has started `attempts` times asks Slurm to requeue it."""
    return attempts < max_attempts
