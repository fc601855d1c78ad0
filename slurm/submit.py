"""`scaling submit`: render a sweep's arrays, submit them with `sbatch --parsable`, and
record the job ids in `<sweep>/slurm/jobs.json`.

Re-submitting skips `done` runs and runs still queued or running under any job recorded in
jobs.json (squeue says which), so it never duplicates work; `retry_failed` also resubmits
failed runs. Every submission renders into its own folder (`slurm/submit-NNN/`: sbatch
scripts, task lists and its own task scripts), because a pending array reads its task list
and task script only when a task starts. jobs.json records a submission's whole plan before
the first sbatch; one that stopped half-way (`"complete": false`) is completed by the next
`submit`, and a folder whose submission queued nothing is removed. Torch-free.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Union

from contract.errors import ConfigError, RunError
from contract.retry import next_phase
from contract.runfolder import (
    list_runs,
    now_iso,
    read_json,
    read_state,
    require_sweep,
    write_json,
)
from slurm import query
from slurm.profile import load_profile
from slurm.sbatch import ArrayJob, Submission, group_arrays, render_array, render_finish, shape_of
from slurm.tasks import check_run_id, run_resources, write_task_scripts


def jobs_path(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / "slurm" / "jobs.json"


def read_jobs(sweep_dir: Path) -> dict:
    return read_json(jobs_path(sweep_dir)) or {"submissions": []}


def recorded_tasks(jobs: dict) -> list[tuple[str, str, str, str]]:
    """(array job id, task index, run id, phase) of every recorded array task, oldest first."""
    out = []
    for sub in jobs.get("submissions", []):
        for array in sub.get("arrays", []):
            if array.get("job"):
                for i, run_id in enumerate(array["run_ids"]):
                    out.append((str(array["job"]), str(i), run_id, array["phase"]))
    return out


def active_runs(jobs: dict, queue: dict) -> dict[str, str]:
    """{run_id: "<array>_<task> STATE"} for runs with a recorded task still in the queue."""
    out = {}
    for job, task, run_id, _ in recorded_tasks(jobs):
        state = queue.get(f"{job}_{task}") or queue.get(job)
        if state and state[0] in query.ACTIVE:
            out[run_id] = f"{job}_{task} {state[0]}"
    return out


def plan(sweep_dir: Path, profile, retry_failed: bool, active: dict) -> Submission:
    """Which runs go into which array; `skipped` says why the others do not."""
    runs = list_runs(sweep_dir)
    if not runs:
        raise FileNotFoundError(f"{sweep_dir}: no runs found: expand a sweep file first "
                                "(`scaling sweep SWEEP.yaml`)")
    train: dict = {}
    transfer_only: dict = {}
    skipped = {}
    for run in runs:
        run_id, run_dir = check_run_id(run.run_id), run.path
        if run.missing:
            skipped[run_id] = "its folder is missing (`scaling sweep` again recreates it)"
            continue
        shape = shape_of(run_resources(run_dir), profile, run_id)
        state = read_state(run_dir)
        phase = next_phase(state, retry_failed)
        if run_id in active:
            skipped[run_id] = f"queued or running ({active[run_id]})"
        elif phase == "train":
            train.setdefault(shape, []).append(run_id)
        elif phase == "transfer":
            transfer_only.setdefault(shape, []).append(run_id)
        elif state["train"] == "done":
            skipped[run_id] = f"transfer {state['transfer']}"
        else:
            skipped[run_id] = f"train {state['train']} (--retry_failed resubmits it)"
    return Submission(arrays=group_arrays(sweep_dir.name, train, transfer_only), skipped=skipped)


def _next_folder(sweep_dir: Path, jobs: dict, dry_run: bool) -> Path:
    if dry_run:
        return sweep_dir / "slurm" / "dry-run"
    n = len(jobs.get("submissions", [])) + 1
    while (sweep_dir / "slurm" / f"submit-{n:03d}").exists():
        n += 1
    return sweep_dir / "slurm" / f"submit-{n:03d}"


def sbatch(script: Path, dependency: Optional[str] = None) -> str:
    argv = ["sbatch", "--parsable"] + ([f"--dependency={dependency}"] if dependency else [])
    argv.append(str(script))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RunError(f"sbatch could not run ({exc}): is Slurm installed here?") from None
    if proc.returncode != 0:
        msg = " ".join((proc.stderr or proc.stdout).split())
        raise RunError(f"sbatch {script.name} failed: {msg}")
    return proc.stdout.strip().split(";")[0]


def _array_record(a: ArrayJob, sweep_dir: Path, after: Optional[int]) -> dict:
    script, tasks = a.rendered()
    return {"phase": a.phase, "shape": a.shape.tag, "name": a.name, "job": a.job,
            "dependency": a.dependency, "after": after, "run_ids": list(a.run_ids),
            "script": str(script.relative_to(sweep_dir)),
            "tasks": str(tasks.relative_to(sweep_dir))}


def _save_record(sweep_dir: Path, record: dict) -> None:
    stored = read_jobs(sweep_dir)
    subs = [s for s in stored.get("submissions", []) if s.get("folder") != record["folder"]]
    write_json(jobs_path(sweep_dir), {"submissions": subs + [record]})


def _drop_record(sweep_dir: Path, folder: str) -> None:
    stored = read_jobs(sweep_dir)
    subs = [s for s in stored.get("submissions", []) if s.get("folder") != folder]
    write_json(jobs_path(sweep_dir), {"submissions": subs})


def _remove_orphans(sweep_dir: Path, jobs: dict) -> None:
    """`slurm/submit-*` folders no submission records (an attempt that failed before its
    first sbatch): nothing queued reads them."""
    known = {s.get("folder") for s in jobs.get("submissions", [])}
    for folder in sorted((sweep_dir / "slurm").glob("submit-*")):
        if folder.is_dir() and str(folder.relative_to(sweep_dir)) not in known:
            shutil.rmtree(folder, ignore_errors=True)
            print(f"{sweep_dir.name}: removed {folder.relative_to(sweep_dir)} (a submission "
                  "that failed before anything was queued)")


def _submit_rest(sweep_dir: Path, record: dict, queue: Optional[dict]) -> list[str]:
    """sbatch every array and the finish job of `record` that has no job id yet, in order,
    saving after each; returns the sbatch lines. Used for a new submission and to complete
    one that failed half-way (e.g. the controller went away after the train array); then
    `queue` is what Slurm holds, and a train array it no longer knows is not waited on."""
    lines = []
    arrays = record["arrays"]
    for rec in arrays:
        if rec.get("job"):
            continue
        dependency = None
        if rec.get("after") is not None:
            train_job = arrays[rec["after"]].get("job")
            dependency = f"aftercorr:{train_job}"
            if queue is not None and not any(k.startswith(f"{train_job}_") or k == train_job
                                 for k in queue):
                dependency = None  # the train array is gone: the task refuses unfinished trunks
        script = sweep_dir / rec["script"]
        rec["job"], rec["dependency"] = sbatch(script, dependency), dependency
        _save_record(sweep_dir, record)
        lines.append(_sbatch_line(script, dependency, rec["job"]))
    fin = record["finish"]
    if not fin.get("job"):
        dependency = "afterany:" + ":".join(str(a["job"]) for a in arrays)
        script = sweep_dir / fin["script"]
        fin["job"], fin["dependency"] = sbatch(script, dependency), dependency
        lines.append(_sbatch_line(script, dependency, fin["job"]))
    record["complete"] = True
    _save_record(sweep_dir, record)
    return lines


def repair(sweep_dir: Path, jobs: dict, queue: dict) -> list[dict]:
    """Complete every recorded submission that stopped half-way; returns their records."""
    repaired = []
    for record in jobs.get("submissions", []):
        if record.get("complete", True) or record.get("dry_run"):
            continue
        missing = [a["name"] for a in record["arrays"] if not a.get("job")]
        lines = _submit_rest(sweep_dir, record, queue)
        print(f"{sweep_dir.name}: completed the half-done submission {record['folder']} "
              f"(submitted {', '.join(missing + ['finish']) if missing else 'finish'})")
        for line in lines:
            print(f"  {line}")
        repaired.append(record)
    return repaired


def submit(sweep_dir: Union[str, Path], profile: Union[str, Path, None] = None,
           dry_run: bool = False, retry_failed: bool = False,
           throttle: Optional[int] = None) -> dict:
    """Render and submit; returns this submission's record (as stored in jobs.json).

    A submission interrupted half-way (sbatch failing after some arrays) is completed by
    the next `submit` before anything new is planned. A dry run writes only into
    `slurm/dry-run/`, which nothing queued reads."""
    sweep_dir = require_sweep(Path(sweep_dir).resolve())
    prof = load_profile(profile)
    if throttle is not None:
        if isinstance(throttle, bool) or not isinstance(throttle, int) or throttle < 1:
            raise ConfigError(f"throttle={throttle!r} is invalid: use a whole number >= 1")
        prof.throttle = throttle
    jobs = read_jobs(sweep_dir)
    queue = query.queue_states(required=not dry_run and bool(recorded_tasks(jobs)))
    if not dry_run:
        _remove_orphans(sweep_dir, jobs)
        if repair(sweep_dir, jobs, queue):
            jobs = read_jobs(sweep_dir)
            queue = query.queue_states(required=True)
    active = active_runs(jobs, queue)
    the_plan = plan(sweep_dir, prof, retry_failed, active)
    if not the_plan.arrays:
        print(f"{sweep_dir.name}: nothing to submit ({len(the_plan.skipped)} runs skipped: "
              "done, failed or already queued; `scaling status` shows which)")
        return {"time": now_iso(), "folder": None, "dry_run": dry_run, "arrays": [],
                "finish": None, "skipped": the_plan.skipped}
    out_dir = _next_folder(sweep_dir, jobs, dry_run)
    if dry_run:
        shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not dry_run:
        (sweep_dir / "slurm" / "logs").mkdir(parents=True, exist_ok=True)
    write_task_scripts(sweep_dir, prof.interpreter, out_dir)  # this submission's own copy
    for i, array in enumerate(the_plan.arrays):
        render_array(sweep_dir, out_dir, array, prof, i)
    finish_script = render_finish(sweep_dir, out_dir, prof)
    the_plan.finish_script = finish_script
    for array in the_plan.arrays:
        if array.after is not None:
            array.dependency = f"aftercorr:<{the_plan.arrays[array.after].name}>"
    ids = [f"<{a.name}>" for a in the_plan.arrays]
    folder = str(out_dir.relative_to(sweep_dir))
    arrays = [_array_record(a, sweep_dir, a.after) for a in the_plan.arrays]
    finish_dependency = "afterany:" + ":".join(ids)
    record = {"time": now_iso(), "folder": folder, "profile": prof.source, "dry_run": dry_run,
              "complete": dry_run, "arrays": arrays,
              "finish": {"job": None, "dependency": finish_dependency,
                         "script": str(finish_script.relative_to(sweep_dir))},
              "skipped": the_plan.skipped}
    if dry_run:
        lines = [_sbatch_line(a.rendered()[0], a.dependency, None) for a in the_plan.arrays]
        lines.append(_sbatch_line(finish_script, finish_dependency, None))
    else:
        _save_record(sweep_dir, record)  # the whole plan first: a failure half-way is repairable
        try:
            lines = _submit_rest(sweep_dir, record, None)
        except RunError as exc:
            if not any(a.get("job") for a in arrays):
                _drop_record(sweep_dir, folder)  # nothing queued: leave no trace
                shutil.rmtree(out_dir, ignore_errors=True)
                raise
            raise RunError(f"{exc}; the arrays already queued are recorded: run "
                           "`scaling submit` again to submit the rest") from None
    verb = "would submit" if dry_run else "submitted"
    print(f"{sweep_dir.name}: {verb} {the_plan.run_count} runs in {len(the_plan.arrays)} "
          f"arrays + finish; {len(the_plan.skipped)} skipped; scripts in {out_dir}")
    for line in lines:
        print(f"  {line}")
    sys.stdout.flush()
    return record


def _sbatch_line(script: Path, dependency: Optional[str], job: Optional[str]) -> str:
    argv = ["sbatch", "--parsable"] + ([f"--dependency={dependency}"] if dependency else [])
    text = " ".join(shlex.quote(a) for a in argv + [str(script)])
    return text + (f"   -> {job}" if job else "")


def cancel(sweep_dir: Union[str, Path]) -> list[str]:
    """scancel every recorded job of the sweep still in the queue; returns the ids."""
    sweep_dir = require_sweep(Path(sweep_dir).resolve())
    jobs = read_jobs(sweep_dir)
    queue = query.queue_states(required=True)
    ids = []
    for sub in jobs.get("submissions", []):
        for rec in [*sub.get("arrays", []), sub.get("finish") or {}]:
            job = str(rec.get("job") or "")
            if job and any(k == job or k.startswith(f"{job}_") for k in queue
                           if queue[k][0] in query.ACTIVE):
                ids.append(job)
    if not ids:
        print(f"{sweep_dir.name}: nothing queued or running to cancel")
        return []
    proc = subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RunError(f"scancel failed: {' '.join(proc.stderr.split())}")
    print(f"{sweep_dir.name}: cancelled jobs {' '.join(ids)} (running tasks checkpoint and "
          "end `cancelled`)")
    return ids
