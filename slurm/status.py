"""`scaling status`: every run's state.json joined with what Slurm says about its tasks.

A row per run: train and transfer phases, attempts, the Slurm task that last ran or will
run it (`<array>_<task>`) with its scheduler state, stale heartbeats, and the last error
line (state.json's, else the last line of the task's log when Slurm says it failed).
Works without Slurm (the Slurm columns stay empty). Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from contract.errors import RunError
from contract.runfolder import MISSING, is_stale, list_runs, read_state
from slurm import query
from slurm.submit import read_jobs, recorded_tasks

FAILED = ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE")


def _log_tail(sweep_dir: Path, name: str, key: str) -> str:
    path = sweep_dir / "slurm" / "logs" / f"{name}_{key}.out"
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln and not ln.startswith("wsl-scaling:")]
    return lines[-1][:300] if lines else ""


# long by design: one table row per run from four sources
def status_rows(sweep_dir: Union[str, Path], problems: Optional[list] = None  # noqa: C901
                ) -> tuple[list[dict], list[str]]:
    """(rows, footer lines): a row per run, a footer line per recorded job. When jobs were
    submitted but Slurm cannot be asked, the rows still come from state.json and the
    reason is appended to ``problems`` (the CLI then exits non-zero)."""
    sweep_dir = Path(sweep_dir).resolve()
    jobs = read_jobs(sweep_dir)
    tasks = recorded_tasks(jobs)
    queue: dict = {}
    if tasks:
        try:
            queue = query.queue_states(required=True)
        except RunError as exc:
            if problems is not None:
                problems.append(f"the Slurm controller is unreachable, the Slurm columns "
                                f"are unknown ({' '.join(str(exc).split())})")
    keys = [f"{j}_{t}" for j, t, _, _ in tasks]
    missing = {k.split("_")[0] for k in keys if k not in queue}
    acct = query.accounting_states(missing) if missing else {}
    names = {str(a["job"]): a["name"] for s in jobs.get("submissions", [])
             for a in s.get("arrays", []) if a.get("job")}

    def slurm_state(key: str) -> str:
        if key in queue:
            return queue[key][0]
        return acct.get(key, ("",))[0]

    by_run: dict[str, list[tuple[str, str]]] = {}
    for job, task, run_id, phase in tasks:
        by_run.setdefault(run_id, []).append((phase, f"{job}_{task}"))
    rows = []
    for run in list_runs(sweep_dir):
        if run.missing:  # listed in manifest.csv, folder gone: shown, never dropped
            rows.append({"run_id": run.run_id, "train": MISSING, "transfer": MISSING,
                         "attempts": 0, "job": "-", "slurm": "", "stale": "",
                         "error": f"{run.path} is missing: run `scaling sweep` again to "
                                  "recreate it"})
            continue
        run_dir = run.path
        state = read_state(run_dir)
        recorded = by_run.get(run_dir.name, [])
        # the task of the phase the run is in: its train task until the trunk is done
        phase = "train" if state["train"] != "done" else "transfer"
        mine = [k for p, k in recorded if p == phase] or [k for _, k in recorded]
        active = [k for k in mine if slurm_state(k) in query.ACTIVE]
        job = (active or mine or [state.get("job") or "-"])[-1]
        slurm = slurm_state(job) if job != "-" else ""
        error = state.get("error") or ""
        if not error and slurm in FAILED:
            error = _log_tail(sweep_dir, names.get(job.split("_")[0], ""), job)
        rows.append({"run_id": run_dir.name, "train": state["train"],
                     "transfer": state["transfer"], "attempts": state["attempts"],
                     "job": job, "slurm": slurm,
                     "stale": "STALE" if is_stale(state) else "", "error": error})
    footer = []
    for sub in jobs.get("submissions", []):
        for array in sub.get("arrays", []):
            job = array.get("job")
            if not job:  # a submission that stopped half-way: `scaling submit` completes it
                footer.append(f"{array['phase']:<8} {'-':>8}  {array['shape']:<22} "
                              "not submitted (run `scaling submit` again)")
                continue
            counts: dict[str, int] = {}
            for i in range(len(array["run_ids"])):
                s = slurm_state(f"{job}_{i}") or "unknown"
                counts[s] = counts.get(s, 0) + 1
            summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            footer.append(f"{array['phase']:<8} {job:>8}  {array['shape']:<22} "
                          f"{summary}" + (f"  (after {array['dependency']})"
                                          if array.get("dependency") else ""))
        fin = sub.get("finish") or {}
        if fin.get("job"):
            footer.append(f"{'finish':<8} {fin['job']:>8}  "
                          f"{'':<22} {slurm_state(str(fin['job'])) or 'unknown'}")
        elif sub.get("arrays") and not sub.get("dry_run"):
            footer.append(f"{'finish':<8} {'-':>8}  {'':<22} not submitted (run `scaling "
                          "submit` again)")
    return rows, footer


def print_table(rows: list[dict], footer: list[str]) -> None:
    if rows:
        widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in rows[0]}
        print("  ".join(k.ljust(widths[k]) for k in rows[0]).rstrip())
        for r in rows:
            print("  ".join(str(r[k]).ljust(widths[k]) for k in r).rstrip())
    done = sum(r["train"] == "done" and r["transfer"] == "done" for r in rows)
    print(f"{len(rows)} runs: {done} done, {len(rows) - done} not done")
    if footer:
        print("jobs:")
        for line in footer:
            print(f"  {line}")
