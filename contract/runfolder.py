"""The run folder and the sweep folder as files (docs/design.md, "The sweep folder"): run
ids, state.json phases and the stale-heartbeat rule, schema-checked JSON reads and writes,
metrics.jsonl records and the run listing. Every reader of a sweep (`scaling status`,
the local executor, `scaling submit`, `scaling collect`) lists runs and judges their
phases with these functions, so they cannot disagree. The writers a running task uses
(state.json updates with heartbeat, host and Slurm job; folder permissions) are here too,
beside what they write. Stdlib only."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from contract import versions
from contract.atomic import atomic_write_text
from contract.errors import ConfigError
from contract.jobenv import JobEnvironment

PHASES = ("pending", "running", "done", "failed", "preempted", "cancelled")
"""What state.json's `train` and `transfer` hold."""
MISSING = "missing"
"""Not a phase: the status of a run that manifest.csv lists but whose folder is gone."""
STALE_AFTER_S = 300
"""A running phase whose heartbeat is older than this is reported stale."""
# A run id (and a sweep name) is one plain folder name: it goes into paths, task lists and
# shell lines, so nothing that could climb out of runs/ or mean something to a shell.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}$")


def check_run_id(run_id: Any, where: str = "") -> str:
    """`run_id` if it is a plain folder name, else a one-line ConfigError naming `where`."""
    if not isinstance(run_id, str) or not SAFE_NAME.match(run_id):
        raise ConfigError(f"{where + ': ' if where else ''}run id {run_id!r} is invalid: use "
                          "letters, digits and . _ + - (not starting with a dot, no slashes)")
    return run_id


SAMPLING_FILE = "sampling.json"
"""A run's expected resampling figures (data/sampling_stats.py): written once at train
start (scaling/sampling.py), or by `scaling data sampling` for a run that lacks it; derived
from the run's config, so no part of the config or its hash."""


def now_iso() -> str:
    """The time format of every timestamp in the run folder (heartbeats included)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- JSON files

def write_json(path: Union[str, Path], payload: dict) -> None:
    """A run-folder JSON file, atomically, stamped with its schema version."""
    payload = {"schema_version": versions.RUN_FILES, **payload}
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=False, default=str) + "\n")


def newer_schema(path: Union[str, Path], version: Any, known: int) -> Optional[str]:
    """The one-line refusal of a file from a newer wsl-scaling, or None."""
    if versions.newer_than_known(version, known):
        return (f"{path}: schema_version {version} is newer than this wsl-scaling reads "
                f"(<= {known}): upgrade wsl-scaling")
    return None


def read_json(path: Union[str, Path]) -> Optional[dict]:
    """None when missing; a newer schema_version than this code knows is a one-line error."""
    path = Path(path)
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    version = payload.get("schema_version", 1) if isinstance(payload, dict) else 1
    problem = newer_schema(path, version, versions.RUN_FILES)
    if problem:
        raise ConfigError(problem)
    return payload


# ---------------------------------------------------------------------------- state.json

def default_state() -> dict[str, Any]:
    return {"train": "pending", "transfer": "pending", "attempts": 0, "images_seen": 0,
            "error": None, "heartbeat": None, "job": None, "host": None, "resumed_from": None}


# state.json field -> the types it may hold (a file with another is read as corrupt)
_STATE_TYPES = {"train": (str,), "transfer": (str,), "attempts": (int,),
                "images_seen": (int,), "error": (str, type(None)),
                "heartbeat": (str, type(None)), "job": (str, type(None)),
                "host": (str, type(None)), "precision": (str, type(None))}


def state_problem(payload: Any) -> Optional[str]:
    """Why a state.json payload is not one (wrong types, unknown phase), or None."""
    if not isinstance(payload, dict):
        return f"holds {type(payload).__name__}, not a mapping"
    for key, kinds in _STATE_TYPES.items():
        value = payload.get(key)
        if key in payload and (not isinstance(value, kinds) or isinstance(value, bool)):
            return f"{key}={value!r} has the wrong type"
        if key in ("train", "transfer") and key in payload and value not in PHASES:
            return f"{key}={value!r} is not a phase"
    beat = payload.get("heartbeat")
    if beat and parse_heartbeat(beat) is None:
        return f"heartbeat={beat!r} is not an ISO time"
    return None


def read_state(run_dir: Union[str, Path]) -> dict[str, Any]:
    """The run's state.json over the defaults. A corrupt, non-UTF-8 or wrong-typed file
    reads as `failed` with an error naming the file (never a traceback in `status`/`run`);
    the next writer replaces it."""
    state = default_state()
    path = Path(run_dir) / "state.json"
    try:
        payload = read_json(path) or {}
        problem = state_problem(payload)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError) as exc:
        problem = f"is not readable JSON ({type(exc).__name__})"
    if problem:
        state.update(train="failed", error=f"{path} is corrupt: {problem}")
        return state
    state.update(payload)
    return state


def parse_heartbeat(text: Any) -> Optional[_dt.datetime]:
    """A state.json heartbeat as an aware datetime, or None when it is not one."""
    try:
        beat = _dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return beat if beat.tzinfo else beat.replace(tzinfo=_dt.timezone.utc)


def is_stale(state: dict, now: Optional[_dt.datetime] = None,
             stale_after_s: float = STALE_AFTER_S) -> bool:
    """A running phase whose heartbeat is older than `stale_after_s`, or unreadable
    (nobody vouches for it): the job probably died without writing a final state."""
    if "running" not in (state.get("train"), state.get("transfer")) or not state.get("heartbeat"):
        return False
    beat = parse_heartbeat(state["heartbeat"])
    if beat is None:
        return True
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return (now - beat).total_seconds() > stale_after_s


def run_status(train: Optional[str], transfer: Optional[str]) -> str:
    """One word for a run: `done` when both phases are, else the phase it is in."""
    if train == "done":
        return "done" if transfer == "done" else (transfer or "pending")
    return train or "pending"


# ---------------------------------------------------------------------------- metrics.jsonl

def parse_metrics_line(line: str) -> Optional[dict]:
    """One metrics.jsonl record, or None for a line that is not one (typically the last
    line of a run killed mid-write)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def read_metrics(run_dir: Union[str, os.PathLike]) -> list[dict]:
    """A run's metrics.jsonl records in order; unreadable lines are skipped, so this works
    on running and preempted runs; [] before the first log step."""
    try:
        lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [r for r in map(parse_metrics_line, lines) if r is not None]


# ---------------------------------------------------------------------------- the sweep folder

def read_manifest(path: Union[str, Path]) -> list[dict]:
    """manifest.csv's rows as {column: text}; [] when there is none."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@dataclass
class RunEntry:
    """One run of a sweep: its id, folder and manifest row (empty for a folder the
    manifest does not list)."""

    run_id: str
    path: Path
    manifest: dict = field(default_factory=dict)

    @property
    def missing(self) -> bool:
        """Listed in manifest.csv, but the folder is gone (status `missing`)."""
        return not self.path.is_dir()


def list_runs(sweep_dir: Union[str, Path], rows: Optional[list[dict]] = None
              ) -> list[RunEntry]:
    """Every run of a sweep, losing none: manifest.csv's rows in order (a row whose folder
    is gone is kept, `missing`), then run folders the manifest does not list, by name. A
    row whose run id is not a plain folder name is a one-line ConfigError. `rows`: the
    manifest as the caller already read it (default: `read_manifest`)."""
    sweep_dir = Path(sweep_dir)
    runs = sweep_dir / "runs"
    where = str(sweep_dir / "manifest.csv")
    if rows is None:
        rows = read_manifest(sweep_dir / "manifest.csv")
    listed = [RunEntry(check_run_id(row.get("run_id"), where), runs / row["run_id"], row)
              for row in rows]
    known = {r.run_id for r in listed}
    extra = sorted(p.name for p in runs.iterdir() if p.is_dir() and p.name not in known
                   and SAFE_NAME.match(p.name)) if runs.is_dir() else []
    return listed + [RunEntry(name, runs / name) for name in extra]


SWEEP_MARKER = "sweep.yaml"
"""What marks a folder as a sweep: `scaling sweep` copies the sweep file there (a folder
that merely holds manifest.csv and runs/ may be anyone's)."""


def require_sweep(sweep_dir: Union[str, Path], need_runs: bool = False) -> Path:
    """The folder, or a one-line ConfigError (bad input, exit 2) when it is not a folder
    made by `scaling sweep` (no sweep.yaml), so a typo or a foreign folder is never read
    or written. Every command given a sweep folder asks here, so they agree on what a
    sweep is and on the exit code. `need_runs`: an expanded sweep with no run folder is
    refused too."""
    sweep_dir = Path(sweep_dir)
    fix = "give a folder made by `scaling sweep`"
    if not sweep_dir.exists():
        raise ConfigError(f"{sweep_dir} does not exist: {fix}")
    if not sweep_dir.is_dir():
        raise ConfigError(f"{sweep_dir} is a file, not a sweep folder: {fix}")
    if not (sweep_dir / SWEEP_MARKER).is_file():
        raise ConfigError(f"{sweep_dir} is not a sweep folder (no {SWEEP_MARKER}, which "
                          f"`scaling sweep` writes): {fix}")
    runs = sweep_dir / "runs"
    if need_runs and not (runs.is_dir() and any(p.is_dir() for p in runs.iterdir())):
        raise ConfigError(f"{sweep_dir} holds no runs (runs/ is empty): expand the sweep "
                          "file again with `scaling sweep`")
    return sweep_dir


# ------------------------------------------------------- writing it, from a running task

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
