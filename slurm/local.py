"""The local executor: every pending run of a sweep on this machine, several at a time.

Runs the same task commands as a Slurm array task (slurm/tasks.py): train, then transfer,
each a subprocess whose output goes to `<sweep>/logs/<run_id>.<phase>.log`. `done` phases
are skipped; failed ones are retried only with `retry_failed`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Optional, Union

from scaling.runfiles import list_runs, read_state
from slurm.tasks import local_command, run_resources

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


def run_one(run_dir: Path, retry_failed: bool = False, env: Optional[dict] = None) -> str:
    """Train then transfer one run; returns its one-line summary."""
    start = time.perf_counter()
    logs = run_dir.parent.parent / "logs"
    logs.mkdir(exist_ok=True)
    env = {**os.environ, **(env or {})}
    res = run_resources(run_dir)
    env.setdefault("OMP_NUM_THREADS", str(res.cpus_per_rank))
    for phase in ("train", "transfer"):
        state = read_state(run_dir)
        if not _todo(state, phase, retry_failed):
            if state[phase] == "done":
                continue
            break  # failed without retry: stop here, the summary says why
        with (logs / f"{run_dir.name}.{phase}.log").open("a") as log:
            log.write(f"\n==== {phase} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            log.flush()
            proc = subprocess.run(local_command(run_dir, phase), stdout=log,
                                  stderr=subprocess.STDOUT, env=env)
        if proc.returncode != 0:
            break
    return _summary(run_dir, time.perf_counter() - start)


def run_local(sweep_dir: Union[str, Path], parallel: int = 2, retry_failed: bool = False,
              progress: bool = True) -> dict[str, str]:
    """Run every unfinished run of `sweep_dir` here; returns {run_id: train/transfer phase}."""
    sweep_dir = Path(sweep_dir)
    runs = list_runs(sweep_dir)
    if not runs:
        raise FileNotFoundError(f"{sweep_dir}: no runs found: expand a sweep file first "
                                "(`scaling sweep SWEEP.yaml`)")
    todo = [r for r in runs if any(_todo(read_state(r), p, retry_failed)
                                    for p in ("train", "transfer"))]
    skipped = len(runs) - len(todo)
    print(f"{sweep_dir.name}: {len(todo)} runs to do, {skipped} already finished or failed "
          f"(--retry_failed reruns failed ones); {parallel} at a time", flush=True)
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="runs", unit="run", dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {pool.submit(run_one, r, retry_failed): r for r in todo}
        for future in as_completed(futures):
            line = future.result()
            if bar:
                bar.write(line)
                bar.update(1)
            else:
                print(line, flush=True)
    if bar:
        bar.close()
    return {r.name: f"{read_state(r)['train']}/{read_state(r)['transfer']}" for r in runs}
