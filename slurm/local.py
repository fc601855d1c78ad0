"""The local executor: every pending run of a sweep on this machine, several at a time.

Runs the same task scripts as a Slurm array task (`<sweep>/slurm/<phase>_task.sh`, rendered
by slurm/tasks.py) in their `local` mode: train, then transfer, each a subprocess whose
output goes to `<sweep>/logs/<run_id>.<phase>.log`. `done` phases are skipped; failed ones
are retried only with `retry_failed` (contract/retry.py, the rule `submit` shares). Runs start
while their CPUs (ranks x cpus_per_rank) fit in this machine's cores, at most `parallel` at
a time; a run larger than the machine runs alone.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Optional, Union

from contract.errors import ConfigError, RunError, one_line
from contract.jobenv import without_slurm
from contract.retry import next_phase
from contract.runfolder import MISSING, RunEntry, list_runs, read_state, require_sweep
from slurm.eta import Eta, describe, run_seconds
from slurm.tasks import local_argv, run_resources, write_task_scripts


def _summary(run_dir: Path, seconds: float) -> str:
    state = read_state(run_dir)
    parts = [f"{run_dir.name:<28}", f"train={state['train']:<9}",
             f"transfer={state['transfer']:<9}", f"{seconds:6.0f}s"]
    for path in sorted((run_dir / "transfer").glob("*.json")):
        try:
            rec = json.loads(path.read_text())
            floor = rec.get("floor_top1")
            parts.append(f"{rec['target']}/{rec['protocol']} top1 {rec['top1']:.1f}"
                         + (f" (floor {floor:.1f})" if floor is not None else ""))
        except (json.JSONDecodeError, KeyError):
            parts.append(f"{path.name}: unreadable")
    if state.get("error"):
        parts.append(f"error: {state['error']}")
    return "  ".join(parts)


class CpuPool:
    """Cores of this machine handed to runs; a run asking for more than all waits for all."""

    def __init__(self, cores: int) -> None:
        self.cores = self.free = max(1, cores)
        self._cond = threading.Condition()

    def take(self, want: int) -> int:
        want = min(max(1, want), self.cores)
        with self._cond:
            self._cond.wait_for(lambda: self.free >= want)
            self.free -= want
        return want

    def give(self, n: int) -> None:
        with self._cond:
            self.free += n
            self._cond.notify_all()


def _last_error(log: Path) -> str:
    """The child's one-line `error: ...` (the last one in its log), if it printed one."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [ln[len("error:"):].strip() for ln in lines if ln.startswith("error:")]
    return errors[-1][:300] if errors else ""


class Children:
    """The executor's live task processes. Each starts in its own session, so a Ctrl-C
    reaches only the executor, which then stops every child the same way: SIGTERM (the
    task script forwards it; training finishes its step, checkpoints and ends `cancelled`),
    then SIGKILL to the child's whole process group after `grace_s`. Nothing outlives
    the executor."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self, argv: list[str], **kwargs) -> Optional[int]:
        """Run argv to its end; None (nothing started) once stopping."""
        with self._lock:
            if self.stopping.is_set():
                return None
            proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
            self._procs.add(proc)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._procs.discard(proc)

    def stop(self, grace_s: float = 60.0) -> int:
        """Stop every child (see the class docstring); returns how many were running."""
        with self._lock:
            self.stopping.set()
            procs = list(self._procs)
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        try:
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        finally:  # also on a second Ctrl-C: never leave a child behind
            for proc in procs:
                _signal_group(proc, signal.SIGKILL)
        return len(procs)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the task script (SIGTERM: it forwards to its child) or, for SIGKILL, its
    whole process group (torchrun and its ranks included)."""
    try:
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, sig)
        elif proc.poll() is None:
            proc.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Stopped(RunError):
    """The executor received SIGTERM or SIGHUP."""


def run_one(run_dir: Path, retry_failed: bool = False, env: Optional[dict] = None,
            failures: Optional[dict] = None, children: Optional[Children] = None) -> str:
    """Train then transfer one run via the sweep's task scripts; returns a one-line summary.
    A phase that exits non-zero is noted in `failures` ({run_id: why}), even when it could
    not record that in state.json (disk full) or refused because another process holds
    the run; once the executor is stopping, nothing new starts."""
    start = time.perf_counter()
    sweep_dir = run_dir.parent.parent
    logs = sweep_dir / "logs"
    logs.mkdir(exist_ok=True)
    env = without_slurm({**os.environ, **(env or {})})  # not an array task, even in one
    res = run_resources(run_dir)
    env["OMP_NUM_THREADS"] = str(res.cpus_per_rank)
    started: list[str] = []
    while (phase := next_phase(read_state(run_dir), retry_failed)) and phase not in started:
        started.append(phase)  # once per call; nothing to run (failed, no retry): summary
        with (logs / f"{run_dir.name}.{phase}.log").open("a") as log:
            log.write(f"\n==== {phase} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            log.flush()
            try:
                argv = local_argv(sweep_dir, run_dir, phase)
            except ConfigError as exc:
                log.write(f"error: {exc}\n")
                return _summary(run_dir, time.perf_counter() - start) + f"  error: {one_line(exc)}"
            code = (children or Children()).run(argv, stdout=log, stderr=subprocess.STDOUT,
                                                 env=env)
        if code is None:  # the executor is stopping: nothing more starts
            break
        if code != 0:
            why = _last_error(logs / f"{run_dir.name}.{phase}.log") or \
                f"{phase} exited {code} (see {logs / f'{run_dir.name}.{phase}.log'})"
            if failures is not None:
                failures[run_dir.name] = why
            summary = _summary(run_dir, time.perf_counter() - start)
            return summary if why in summary else f"{summary}  {why}"
    return _summary(run_dir, time.perf_counter() - start)


def _pooled(pool: CpuPool, run_dir: Path, retry_failed: bool, failures: dict,
            children: Children, eta: Optional[Eta] = None) -> str:
    try:
        res = run_resources(run_dir)
        want = res.devices_per_node * res.cpus_per_rank
    except ConfigError:
        want = 1
    got = pool.take(want)
    if eta is not None:
        eta.start(run_dir.name, time.monotonic())
    try:
        return run_one(run_dir, retry_failed, failures=failures, children=children)
    finally:
        if eta is not None:
            eta.finish(run_dir.name, time.monotonic())
        pool.give(got)


def _estimate(entry: RunEntry) -> Optional[float]:
    """Seconds left of a run by the sweep's estimate (transfer only once trained)."""
    total = run_seconds(entry.manifest)
    if total is None or read_state(entry.path)["train"] != "done":
        return total
    try:
        return float(entry.manifest["est_transfer_s"])
    except (KeyError, TypeError, ValueError):
        return None


def longest_first(entries: list[RunEntry]) -> list[Path]:
    """Run folders by the sweep's estimate of their cost (manifest `est_train_s` +
    `est_transfer_s`, measured on this host; else `est_device_hours`), largest first, ties
    in manifest order: with a few runs at a time, the last ones to start are then the
    short ones, so cores are not left idle behind one long run at the end. A run without a
    usable estimate counts as the cheapest. (So the runs `run_local` reports and names on
    failure come in this order too.)"""
    def cost(entry: RunEntry) -> float:
        seconds = run_seconds(entry.manifest)  # measured on this host by `scaling sweep`
        if seconds is not None:
            return seconds
        try:
            value = float(entry.manifest.get("est_device_hours") or 0.0) * 3600
        except (TypeError, ValueError):
            return 0.0
        return value if math.isfinite(value) else 0.0
    return [e.path for e in sorted(entries, key=lambda e: -cost(e))]


def run_local(sweep_dir: Union[str, Path], parallel: int = 2, retry_failed: bool = False,
              progress: bool = True, cores: Optional[int] = None) -> dict[str, str]:
    """Run every unfinished run of `sweep_dir` here; returns {run_id: train/transfer phase}."""
    sweep_dir = require_sweep(sweep_dir)
    entries = list_runs(sweep_dir)
    if not entries:
        raise FileNotFoundError(f"{sweep_dir}: no runs found: expand a sweep file first "
                                "(`scaling sweep SWEEP.yaml`)")
    runs = longest_first([r for r in entries if not r.missing])
    missing = [r.run_id for r in entries if r.missing]
    write_task_scripts(sweep_dir, sys.executable)
    pool = CpuPool(cores or len(os.sched_getaffinity(0)))
    todo = [r for r in runs if next_phase(read_state(r), retry_failed) is not None]
    skipped = len(runs) - len(todo)
    by_path = {e.path: e for e in entries}
    eta = Eta({r.name: _estimate(by_path[r]) for r in todo}, parallel)
    started = time.monotonic()
    left = estimated = eta.left(started)
    print(f"{sweep_dir.name}: {len(todo)} runs to do, {skipped} already finished or failed "
          f"(--retry_failed reruns failed ones); {parallel} at a time"
          + (f"; about {describe(left)} by the sweep's estimate" if left else "")
          + (f"; {len(missing)} listed in manifest.csv have no folder ({missing[0]}...): "
             "`scaling sweep` again recreates them" if missing else ""), flush=True)
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="runs", unit="run", dynamic_ncols=True)
    failures: dict[str, str] = {}
    children = Children()
    previous = _install_stop_handlers()
    ex = ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        futures = {ex.submit(_pooled, pool, r, retry_failed, failures, children, eta): r
                   for r in todo}
        for count, future in enumerate(as_completed(futures), 1):
            line = future.result()
            left = eta.left(time.monotonic()) if count < len(todo) else None
            if left is not None:
                line += f"  [{count}/{len(todo)} runs, about {describe(left)} left]"
            if bar:
                bar.write(line)
                bar.update(1)
                if left is not None:
                    bar.set_postfix_str(f"about {describe(left)} left")
            else:
                print(line, flush=True)
    except (KeyboardInterrupt, _Stopped) as exc:
        stopped = children.stop()
        ex.shutdown(wait=True, cancel_futures=True)
        why = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else str(exc)
        raise RunError(f"stopped by {why}: {stopped} running task(s) were stopped (training "
                       "checkpoints and ends `cancelled`); rerun `scaling run --local` to "
                       "resume") from None
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
        _restore(previous)
        if bar:
            bar.close()
    if todo:  # what the estimate is judged by
        print(f"{sweep_dir.name}: {len(todo)} runs in {describe(time.monotonic() - started)}"
              + (f" (the sweep estimated {describe(estimated)})" if estimated else ""),
              flush=True)
    if failures:
        first = sorted(failures)[0]
        st = read_state(sweep_dir / "runs" / first)
        why = failures[first].removeprefix(f"{first}: ")
        raise RunError(f"{len(failures)} of {len(runs)} runs did not finish: {first} "
                       f"({st['train']}/{st['transfer']}); {first}: {why}; logs in "
                       f"{sweep_dir / 'logs'}")
    phases = {r.name: f"{read_state(r)['train']}/{read_state(r)['transfer']}" for r in runs}
    return {**phases, **{run_id: f"{MISSING}/{MISSING}" for run_id in missing}}


def _install_stop_handlers() -> dict:
    """SIGTERM / SIGHUP raise `_Stopped` in the main thread (as SIGINT raises
    KeyboardInterrupt), so the executor stops its children instead of orphaning them."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, _frame):
        raise _Stopped(signal.Signals(signum).name)

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}


def _restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
