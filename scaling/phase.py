"""One runner for a run's phases (`scaling train`, `scaling transfer`): what every phase
does around its own work, written once so the two cannot drift.

In order: the `scaling` logger and the umask (no group- or world-writable file), the
phase's own preparation, the done check, the process group on the configured device with
`resources.collective_timeout_s` (a rank waits that long for a lost peer, then fails with
one line), this rank's threads, the run lock (one process per run, scaling/runlock.py),
the done check again (another process may have finished it meanwhile), the body, and on
the way out: a failure recorded in state.json (not for Ctrl-C or another process holding
the run), the lock released, the process group torn down (with a barrier only after a
clean end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Optional, TypeVar

import torch

from contract.config import RunConfig
from contract.errors import one_line
from contract.runfolder import restrict_umask, update_state
from scaling import dist, logs
from scaling.runlock import RunLock, RunLocked

log = logging.getLogger(__name__)

T = TypeVar("T")


class PhaseStopped(BaseException):
    """Raised by a phase's body that recorded its own stop (cancelled by a signal): not a
    failure, and the peers stop too, so the process group is torn down without a barrier.
    A BaseException, so no `except Exception` on the way swallows it."""


def run_phase(run_dir: Path, phase: str, config: RunConfig, body: Callable[[dist.DistEnv], T],
              *, finished: Callable[[], bool], nothing: T,
              prepare: Optional[Callable[[], None]] = None) -> T:
    """Run `body(env)` as the run's `phase`; `nothing` when `finished()` says it is done
    (before any process group is made, and again once the lock is held)."""
    logs.setup()
    restrict_umask()
    if prepare is not None:
        prepare()
    if finished():
        log.info("%s: %s already done, nothing to do", run_dir.name, phase)
        return nothing
    res = config.resources
    env = dist.setup(res.device, res.collective_timeout_s)
    if env.device.type == "cpu":
        torch.set_num_threads(res.cpus_per_rank)
    lock, clean = None, False
    try:
        lock = hold_run(run_dir, env, phase)
        if finished():  # finished by another process while we waited for the lock
            log.info("%s: %s already done, nothing to do", run_dir.name, phase)
            clean = True
            return nothing
        result = body(env)
        clean = True
        return result
    except PhaseStopped:
        return nothing
    except BaseException as exc:
        if env.is_main and not isinstance(exc, (KeyboardInterrupt, RunLocked)):
            record_failure(run_dir, phase, exc, dist.failure_line(exc, env))
        raise
    finally:
        if lock is not None:
            lock.release()
        dist.teardown(clean)


def hold_run(run_dir: Path, env: dist.DistEnv, phase: str) -> Optional[RunLock]:
    """Collective: rank 0 takes the run's lock (scaling/runlock.py); every rank raises
    RunLocked when another live process holds it, before anything is written."""
    lock, message = None, ""
    if env.is_main:
        try:
            lock = RunLock(run_dir, phase).acquire()
        except RunLocked as exc:
            message = str(exc)
    if dist.all_reduce_max(1.0 if message else 0.0, env):
        raise RunLocked(message or f"{run_dir.name}: rank 0 could not take the run lock")
    return lock


def record_failure(run_dir: Path, phase: str, exc: BaseException,
                   line: Optional[str] = None) -> None:
    """Mark the phase failed in state.json with `line` (default: the exception's one
    line); when even that cannot be written (disk full), say so on stderr, so the failure
    is never silent (the exit status is non-zero too)."""
    try:
        update_state(run_dir, **{phase: "failed", "error": line or one_line(exc)})
    except OSError as write_exc:
        log.error("%s: %s failed (%s) and state.json could not record it (%s)", run_dir.name,
                  phase, one_line(exc), one_line(write_exc))
