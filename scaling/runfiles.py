"""The run folder's small files (state.json, provenance.json, transfer results): atomic
writes and schema-checked reads. Torch-free and stdlib-only, so `slurm/` and `analysis/`
style readers can share the exact contract without pulling in the engine."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

from slurm.environment import JobEnvironment

SCHEMA_VERSION = 1
PHASES = ("pending", "running", "done", "failed", "preempted", "cancelled")
STALE_AFTER_S = 300  # a running phase whose heartbeat is older than this is reported stale
# A run id (and a sweep name) is one plain folder name: it goes into paths, task lists and
# shell lines, so nothing that could climb out of runs/ or mean something to a shell.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}$")


def check_run_id(run_id: object, where: str = "") -> str:
    """`run_id` if it is a plain folder name, else a one-line ConfigError naming `where`."""
    if not isinstance(run_id, str) or not SAFE_NAME.match(run_id):
        from scaling.errors import ConfigError

        raise ConfigError(f"{where + ': ' if where else ''}run id {run_id!r} is invalid: use "
                          "letters, digits and . _ + - (not starting with a dot, no slashes)")
    return run_id


def restrict_umask() -> None:
    """Never create files or folders that group or others can write (a checkpoint that
    someone else can replace is code they can run: see README, "What is trusted")."""
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


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_text(path: Union[str, Path], text: str) -> None:
    """Write via a temp file in the same folder + os.replace: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Union[str, Path], payload: dict) -> None:
    payload = {"schema_version": SCHEMA_VERSION, **payload}
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=False, default=str) + "\n")


def read_json(path: Union[str, Path]) -> Optional[dict]:
    """None when missing; a newer schema_version than this code knows is a one-line error."""
    path = Path(path)
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    version = payload.get("schema_version", 1) if isinstance(payload, dict) else 1
    if isinstance(version, int) and version > SCHEMA_VERSION:
        from scaling.errors import ConfigError

        raise ConfigError(f"{path}: schema_version={version} is newer than this wsl-scaling "
                          f"reads ({SCHEMA_VERSION}): upgrade wsl-scaling")
    return payload


# ---------------------------------------------------------------------------- state.json

def default_state() -> dict[str, Any]:
    return {"train": "pending", "transfer": "pending", "attempts": 0, "images_seen": 0,
            "error": None, "heartbeat": None, "job": None, "host": None, "resumed_from": None}


# state.json field -> the types it may hold (a file with another is read as corrupt)
_STATE_TYPES = {"train": (str,), "transfer": (str,), "attempts": (int,),
                "images_seen": (int,), "error": (str, type(None)),
                "heartbeat": (str, type(None)), "job": (str, type(None)),
                "host": (str, type(None))}


def _state_problem(payload: Any) -> Optional[str]:
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
        problem = _state_problem(payload)
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


def is_stale(state: dict, now: Optional[_dt.datetime] = None) -> bool:
    if "running" not in (state.get("train"), state.get("transfer")) or not state.get("heartbeat"):
        return False
    beat = parse_heartbeat(state["heartbeat"])
    if beat is None:
        return True  # a running phase whose heartbeat cannot be read: nobody vouches for it
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return (now - beat).total_seconds() > STALE_AFTER_S


def slurm_job_id() -> Optional[str]:
    """`<array>_<task>` for array tasks, else the job id, else None."""
    return JobEnvironment.from_env().job_id


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


# ---------------------------------------------------------------------------- the sweep folder

def read_manifest(path: Union[str, Path]) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def list_runs(sweep_dir: Union[str, Path]) -> list[Path]:
    """Run folders of a sweep in manifest order (folders missing from it last)."""
    sweep_dir = Path(sweep_dir)
    runs = sweep_dir / "runs"
    ids = [check_run_id(row.get("run_id"), f"{sweep_dir / 'manifest.csv'}")
           for row in read_manifest(sweep_dir / "manifest.csv")]
    extra = sorted(p.name for p in runs.iterdir() if p.is_dir() and p.name not in ids
                   and SAFE_NAME.match(p.name)) if runs.is_dir() else []
    return [runs / i for i in ids + extra if (runs / i).is_dir()]


def require_sweep(sweep_dir: Union[str, Path]) -> Path:
    """The folder, or a one-line error when it is not a sweep folder (`scaling sweep`
    writes manifest.csv and runs/), so a typo never reads or writes somewhere else."""
    from scaling.errors import ConfigError

    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / "manifest.csv").is_file() and not (sweep_dir / "runs").is_dir():
        what = "does not exist" if not sweep_dir.exists() else "is not a sweep folder"
        raise ConfigError(f"{sweep_dir} {what} (no manifest.csv or runs/): give a folder "
                          "made by `scaling sweep`")
    return sweep_dir
