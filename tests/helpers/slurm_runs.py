"""Tiny sweeps written straight to disk (no torch, no `scaling sweep`), the `scaling` CLI as
a subprocess, and polling helpers for the Slurm tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.helpers.engine import TINY
from tests.helpers.engine import env as engine_env


def write_sweep(root: Path, name: str, runs: dict) -> Path:
    """runs: {run_id: {"optim.images_seen": 4800, ...}} over TINY (1 CPU, 1 GiB, 10 min)."""
    sweep = root / name
    rows = []
    for run_id, overrides in runs.items():
        config = json.loads(json.dumps(TINY))
        config["name"] = run_id
        config["resources"].update(mem_gb=1, time_min=10)
        for dotted, value in overrides.items():
            node = config
            *path, last = dotted.split(".")
            for key in path:
                node = node.setdefault(key, {})
            node[last] = value
        (sweep / "runs" / run_id).mkdir(parents=True)
        (sweep / "runs" / run_id / "config.yaml").write_text(yaml.safe_dump(config))
        rows.append(run_id)
    (sweep / "manifest.csv").write_text("run_id\n" + "".join(f"{r}\n" for r in rows))
    (sweep / "sweep.yaml").write_text(yaml.safe_dump({"name": name, "base": TINY}))
    return sweep


def write_sweep_file(where: Path, name: str = "tiny", base: dict | None = None,
                     **spec) -> Path:
    """A sweep file (what `scaling sweep` reads): `where` is the file (a .yaml path) or the
    folder to write NAME.yaml in; base defaults to TINY without its name; extra keys (axes,
    seeds, ...) go into the spec. write_sweep above writes the folder a sweep makes."""
    where = Path(where)
    path = where if where.suffix in (".yaml", ".yml") else where / f"{name[:40]}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if base is None:
        base = {k: v for k, v in json.loads(json.dumps(TINY)).items() if k != "name"}
    path.write_text(yaml.safe_dump({"name": name, "base": base, **spec}, sort_keys=False))
    return path


def write_profile(path: Path, **fields) -> Path:
    profile = {"throttle": 2, "signal_s": 60, "transfer_time_min": 10,
               "finish": {"report": False, "mem_gb": 1}, **fields}
    path.write_text(yaml.safe_dump(profile))
    return path


def clean_env() -> dict:
    """The environment a user's shell gives `scaling`: no Slurm or torchrun variables of
    this process, one thread, nbconvert's templates (the finish job's report)."""
    env = engine_env()
    env.pop("SCALING_DEBUG", None)
    env.update(_jupyter_path())
    return env


def _jupyter_path() -> dict:
    """nbconvert's templates live under the installing venv's share/jupyter, which a venv
    layered on another (a worktree's) does not see by itself."""
    import nbconvert

    install = Path(nbconvert.__file__).resolve().parents[4]
    paths = [str(p / "share" / "jupyter") for p in (Path(sys.prefix), install)
             if (p / "share" / "jupyter").is_dir()]
    extra = os.environ.get("JUPYTER_PATH")
    return {"JUPYTER_PATH": os.pathsep.join(paths + ([extra] if extra else []))} if paths else {}


# the console script next to this interpreter (what `pip install` puts on PATH)
SCALING = Path(sys.executable).with_name("scaling")


def cli_argv(*args) -> list[str]:
    """`scaling ARGS` as a user runs it: the console script, or (in a venv layered on
    another, which has none) this interpreter without the working folder on sys.path."""
    argv = [str(SCALING)] if SCALING.is_file() else \
        [sys.executable, "-c", ("import sys; del sys.path[0]; from scaling.cli import main; "
                                "sys.exit(main())")]
    return argv + [str(a) for a in args]


def scaling(*args, check: bool = True, timeout: int = 120, cwd=None, env=None,
            **popen) -> subprocess.CompletedProcess:
    """The one CLI runner of the tests: `scaling ARGS` in a subprocess, in cwd, with env
    laid over clean_env(); check=True fails the test on a non-zero exit."""
    proc = subprocess.run(cli_argv(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**clean_env(), **(env or {})}, **popen)
    if check and proc.returncode != 0:
        raise AssertionError(f"scaling {' '.join(map(str, args))} -> {proc.returncode}\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def jobs(sweep: Path) -> dict:
    return json.loads((sweep / "slurm" / "jobs.json").read_text())


def job_ids(sweep: Path) -> list[str]:
    out = []
    for sub in jobs(sweep)["submissions"]:
        out += [a["job"] for a in sub["arrays"]] + [sub["finish"]["job"]]
    return out


def state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def queued(ids: list[str]) -> bool:
    proc = subprocess.run(["squeue", "-h", "-j", ",".join(ids)], capture_output=True,
                          text=True, timeout=30)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def wait_gone(ids: list[str], timeout: float) -> None:
    wait_for(lambda: not queued(ids), timeout, f"jobs {ids} to leave the queue", every=0.3)


def scontrol_job(key: str) -> dict:
    """`scontrol show job KEY` as {field: value} (first record)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", key], capture_output=True,
                         text=True, timeout=30).stdout.splitlines()
    fields = {}
    for token in (out[0].split() if out else []):
        if "=" in token:
            k, v = token.split("=", 1)
            fields.setdefault(k, v)
    return fields


def marks(sweep: Path) -> list[tuple[str, str, str, float]]:
    """(event, phase, run_id, epoch) of every task start/end line in the Slurm logs."""
    out = []
    for log in sorted((sweep / "slurm" / "logs").glob("*.out")):
        for line in log.read_text(errors="replace").splitlines():
            if not line.startswith("wsl-scaling: "):
                continue
            words = line.split()
            fields = dict(w.split("=", 1) for w in words if "=" in w)
            if words[1] == "finish":
                out.append((words[2], "finish", "-", float(fields["at"])))
            elif words[1] in ("start", "end"):
                out.append((words[1], fields["phase"], fields["run"], float(fields["at"])))
    return out
