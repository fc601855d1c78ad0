"""The local executor: every pending run of a sweep on this machine, several at a time.

Runs the same task scripts as a Slurm array task (`<sweep>/slurm/<phase>_task.sh`, rendered
by slurm/tasks.py) in their `local` mode: train, then transfer, each a subprocess whose
output goes to `<sweep>/logs/<run_id>.<phase>.log`. `done` phases are skipped; failed ones
are retried only with `retry_failed`. Runs start while their CPUs (ranks x cpus_per_rank)
fit in this machine's cores, at most `parallel` at a time; a run larger than the machine
runs alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Optional, Union

from scaling.errors import ConfigError, RunError
from scaling.runfiles import list_runs, one_line, read_state
from slurm.tasks import local_argv, run_resources, write_task_scripts

RETRYABLE = ("pending", "running", "preempted", "cancelled")


def _todo(state: dict, phase: str, retry_failed: bool) -> bool:
    value = state[phase]
    return value in RETRYABLE or (retry_failed and value == "failed")


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


def run_one(run_dir: Path, retry_failed: bool = False, env: Optional[dict] = None,
            failures: Optional[dict] = None) -> str:
    """Train then transfer one run via the sweep's task scripts; returns a one-line summary.
    A phase that exits non-zero is noted in `failures` ({run_id: why}), even when it could
    not record that in state.json (disk full) or refused because another process holds
    the run."""
    start = time.perf_counter()
    sweep_dir = run_dir.parent.parent
    logs = sweep_dir / "logs"
    logs.mkdir(exist_ok=True)
    env = {**os.environ, **(env or {})}
    for key in [k for k in env if k.startswith("SLURM_")]:
        env.pop(key)  # a local run inside an allocation must not pose as an array task
    res = run_resources(run_dir)
    env["OMP_NUM_THREADS"] = str(res.cpus_per_rank)
    for phase in ("train", "transfer"):
        state = read_state(run_dir)
        if not _todo(state, phase, retry_failed):
            if state[phase] == "done":
                continue
            break  # failed without retry: stop here, the summary says why
        with (logs / f"{run_dir.name}.{phase}.log").open("a") as log:
            log.write(f"\n==== {phase} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            log.flush()
            try:
                argv = local_argv(sweep_dir, run_dir, phase)
            except ConfigError as exc:
                log.write(f"error: {exc}\n")
                return _summary(run_dir, time.perf_counter() - start) + f"  error: {one_line(exc)}"
            proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        if proc.returncode != 0:
            why = _last_error(logs / f"{run_dir.name}.{phase}.log") or \
                f"{phase} exited {proc.returncode} (see {logs / f'{run_dir.name}.{phase}.log'})"
            if failures is not None:
                failures[run_dir.name] = why
            summary = _summary(run_dir, time.perf_counter() - start)
            return summary if why in summary else f"{summary}  {why}"
    return _summary(run_dir, time.perf_counter() - start)


def _pooled(pool: CpuPool, run_dir: Path, retry_failed: bool, failures: dict) -> str:
    try:
        res = run_resources(run_dir)
        want = res.devices_per_node * res.cpus_per_rank
    except ConfigError:
        want = 1
    got = pool.take(want)
    try:
        return run_one(run_dir, retry_failed, failures=failures)
    finally:
        pool.give(got)


def run_local(sweep_dir: Union[str, Path], parallel: int = 2, retry_failed: bool = False,
              progress: bool = True, cores: Optional[int] = None) -> dict[str, str]:
    """Run every unfinished run of `sweep_dir` here; returns {run_id: train/transfer phase}."""
    sweep_dir = Path(sweep_dir)
    runs = list_runs(sweep_dir)
    if not runs:
        raise FileNotFoundError(f"{sweep_dir}: no runs found: expand a sweep file first "
                                "(`scaling sweep SWEEP.yaml`)")
    write_task_scripts(sweep_dir, sys.executable)
    pool = CpuPool(cores or len(os.sched_getaffinity(0)))
    todo = [r for r in runs if any(_todo(read_state(r), p, retry_failed)
                                    for p in ("train", "transfer"))]
    skipped = len(runs) - len(todo)
    print(f"{sweep_dir.name}: {len(todo)} runs to do, {skipped} already finished or failed "
          f"(--retry_failed reruns failed ones); {parallel} at a time", flush=True)
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="runs", unit="run", dynamic_ncols=True)
    failures: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as ex:
        futures = {ex.submit(_pooled, pool, r, retry_failed, failures): r for r in todo}
        for future in as_completed(futures):
            line = future.result()
            if bar:
                bar.write(line)
                bar.update(1)
            else:
                print(line, flush=True)
    if bar:
        bar.close()
    if failures:
        first = sorted(failures)[0]
        raise RunError(f"{len(failures)} of {len(todo)} runs did not finish here ({first}: "
                       f"{failures[first]}); logs in {sweep_dir / 'logs'}")
    return {r.name: f"{read_state(r)['train']}/{read_state(r)['transfer']}" for r in runs}
