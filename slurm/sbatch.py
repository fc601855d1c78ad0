"""sbatch rendering: one array job per resource shape and phase, plus the finish job.

For each shape (nodes x devices x CPUs x memory x time x GPU or not) of the runs to do:
  train-<shape>.sbatch     --array=0-N%K over train-<shape>.tasks (one run id a line),
                           --signal=USR2@S --requeue, execs slurm/train_task.sh
  transfer-<shape>.sbatch  the same task list; submitted with aftercorr on the train array,
                           so transfer task i starts only after train task i exited 0
Runs whose trunk is already done get a transfer-only array (no dependency). finish.sbatch
runs `slurm.finish` (as `python -m`, working directory off sys.path) after everything
(afterany). Values reaching a `#SBATCH` line were validated by slurm/profile.py; values
reaching a shell line are shlex-quoted.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from contract.atomic import atomic_write_text
from contract.config import ResourcesConfig
from contract.errors import ConfigError
from slurm.profile import Profile
from slurm.tasks import NOCWD, check_run_id, task_script_path

SBATCH_PATH = re.compile(r"^[A-Za-z0-9_./+@:=,-]+$")  # what a `#SBATCH --output=` line can hold


@dataclass(frozen=True)
class Shape:
    """What one array job asks of the scheduler, per task."""

    nodes: int
    devices_per_node: int
    cpus_per_rank: int
    mem_gb: int
    time_min: int
    gpu: bool

    @property
    def tag(self) -> str:
        kind = "gpu" if self.gpu else "cpu"
        return (f"{self.nodes}n{self.devices_per_node}{kind}-c{self.cpus_per_rank}"
                f"-m{self.mem_gb}g-t{self.time_min}")


def shape_of(res: ResourcesConfig, profile: Profile, run_id: str) -> Shape:
    if profile.gpus is None and res.device == "cuda":
        raise ConfigError(f"run {run_id}: resources.device=cuda but profile {profile.source} is "
                          "CPU-only (gpus: null): use a GPU profile (--profile) or device: cpu")
    gpu = profile.gpus is not None and res.device in ("cuda", "auto")
    return Shape(res.nodes, res.devices_per_node, res.cpus_per_rank, res.mem_gb, res.time_min,
                 gpu)


@dataclass
class ArrayJob:
    """One array to submit: its phase, shape, task list and (after submission) job id."""

    phase: str                   # train | transfer
    shape: Shape
    run_ids: list[str]
    name: str
    script: Optional[Path] = None
    tasks_file: Optional[Path] = None
    after: Optional[int] = None  # index of the train array this transfer array follows
    job: Optional[str] = None
    dependency: Optional[str] = None

    def rendered(self) -> tuple[Path, Path]:
        """(script, tasks file): both exist once render_array wrote them."""
        if self.script is None or self.tasks_file is None:
            raise ValueError(f"array {self.name} is not rendered yet (call render_array)")
        return self.script, self.tasks_file


@dataclass
class Submission:
    arrays: list[ArrayJob] = field(default_factory=list)
    finish_script: Optional[Path] = None
    skipped: dict[str, str] = field(default_factory=dict)  # run_id -> why

    @property
    def run_count(self) -> int:
        return len({r for a in self.arrays for r in a.run_ids})


def job_name(sweep_name: str, phase: str, shape: Optional[Shape] = None) -> str:
    base = re.sub(r"[^A-Za-z0-9_.+-]", "_", sweep_name)[:40] or "sweep"
    return f"{base}.{phase}" + (f".{shape.tag}" if shape else "")


def _check_sbatch_path(path: Path) -> str:
    text = str(path)
    if not SBATCH_PATH.match(text):
        raise ConfigError(f"sweep folder {text!r} cannot go into an `#SBATCH --output` line "
                          "(spaces, quotes, % or # are not allowed there): move the sweep "
                          "to a plainer path")
    return text


def _header(profile: Profile, shape: Optional[Shape], phase: str) -> list[str]:
    """Resource and placement lines (no array, output or dependency)."""
    lines = []
    gpu = shape is not None and shape.gpu and phase != "finish"
    partition = profile.partition if gpu or not profile.cpu_partition else profile.cpu_partition
    for opt, value in (("partition", partition), ("account", profile.account),
                       ("qos", profile.qos)):
        if value:
            lines.append(f"--{opt}={value}")
    if profile.constraint and (gpu or profile.gpus is None):
        lines.append(f"--constraint={profile.constraint}")
    if phase == "finish":
        f = profile.finish
        lines += ["--nodes=1", "--ntasks=1", f"--cpus-per-task={f.cpus}", f"--time={f.time_min}"]
        if profile.mem:
            lines.append(f"--mem={f.mem_gb}G")
    elif shape is None:
        raise ValueError(f"a {phase} job script needs a resource shape")
    elif phase == "train":
        lines += [f"--nodes={shape.nodes}", f"--ntasks-per-node={shape.devices_per_node}",
                  f"--cpus-per-task={shape.cpus_per_rank}", f"--time={shape.time_min}"]
        if profile.mem:
            lines.append(f"--mem={shape.mem_gb}G")
        if gpu:
            lines += _gpu_lines(profile, shape)
        if profile.signal_s >= shape.time_min * 60:
            raise ConfigError(f"profile field signal_s={profile.signal_s} is not below the "
                              f"time limit of shape {shape.tag} ({shape.time_min} min): "
                              "lower signal_s or raise resources.time_min")
        lines += [f"--signal=USR2@{profile.signal_s}", "--requeue"]
    else:  # transfer: one node, a rank per device (features sharded, fine-tuning sharded)
        lines += ["--nodes=1", f"--ntasks-per-node={shape.devices_per_node}",
                  f"--cpus-per-task={shape.cpus_per_rank}",
                  f"--time={profile.transfer_time_min}", "--requeue",
                  "--kill-on-invalid-dep=yes"]
        if profile.mem:
            lines.append(f"--mem={shape.mem_gb}G")
        if gpu:
            lines += _gpu_lines(profile, shape)
    return lines + list(profile.extra_sbatch)


def _gpu_lines(profile: Profile, shape: Shape) -> list[str]:
    if profile.gpus is None:  # shape_of only marks a shape gpu when the profile has GPUs
        raise ConfigError(f"shape {shape.tag} asks for GPUs but profile {profile.source} is "
                          "CPU-only (gpus: null): use a GPU profile (--profile)")
    return profile.gpus.sbatch_lines(shape.devices_per_node)


def _body(profile: Profile) -> list[str]:
    """Profile set-up and environment, shared by every job script."""
    out = []
    if profile.setup:
        out.append("# set-up from the cluster profile")
        out += profile.setup
    for key, value in profile.env.items():
        out.append(f"export {key}={shlex.quote(value)}")
    return out


def _write(path: Path, sbatch: list[str], body: list[str], comment: str) -> Path:
    text = "\n".join(["#!/usr/bin/env bash", f"# {comment}",
                      *(f"#SBATCH {line}" for line in sbatch), *body]) + "\n"
    atomic_write_text(path, text)
    return path


def render_array(sweep_dir: Path, out_dir: Path, array: ArrayJob, profile: Profile,
                 index: int) -> None:
    stem = f"{index:02d}-{array.phase}-{array.shape.tag}"
    tasks = out_dir / f"{stem}.tasks"
    atomic_write_text(tasks, "".join(f"{check_run_id(r)}\n" for r in array.run_ids))
    logs = _check_sbatch_path(sweep_dir / "slurm" / "logs")
    n = len(array.run_ids)
    sbatch = [f"--job-name={array.name}", f"--array=0-{n - 1}%{min(profile.throttle, n)}",
              f"--output={logs}/%x_%A_%a.out", "--open-mode=append",
              *_header(profile, array.shape, array.phase)]
    script = task_script_path(sweep_dir, array.phase, out_dir)  # this submission's own copy
    body = _body(profile) + [f"exec bash {shlex.quote(str(script))} slurm "
                             f"{shlex.quote(str(tasks))}"]
    array.tasks_file = tasks
    array.script = _write(out_dir / f"{stem}.sbatch", sbatch, body,
                          f"wsl-scaling {array.phase} array: {n} runs of shape {array.shape.tag}")


def render_finish(sweep_dir: Path, out_dir: Path, profile: Profile) -> Path:
    logs = _check_sbatch_path(sweep_dir / "slurm" / "logs")
    sbatch = [f"--job-name={job_name(sweep_dir.name, 'finish')}",
              f"--output={logs}/%x_%j.out", "--open-mode=append",
              *_header(profile, None, "finish")]
    argv = [profile.interpreter, "-c", NOCWD, "slurm.finish", str(sweep_dir)]
    if not profile.finish.report:
        argv.append("--no_report")
    body = _body(profile) + ["export PYTHONUNBUFFERED=1",
                             "exec " + " ".join(shlex.quote(a) for a in argv)]
    return _write(out_dir / "finish.sbatch", sbatch, body,
                  "wsl-scaling finish: status, collect and report once every task ended")


def group_arrays(sweep_name: str, train: dict, transfer_only: dict) -> list[ArrayJob]:
    """train/transfer_only: {Shape: [run_id, ...]} -> arrays; a transfer array per train
    array (same task list, so aftercorr pairs task i with task i)."""
    arrays: list[ArrayJob] = []
    for shape in sorted(train, key=lambda s: s.tag):
        ids = train[shape]
        arrays.append(ArrayJob("train", shape, ids, job_name(sweep_name, "train", shape)))
        arrays.append(ArrayJob("transfer", shape, ids, job_name(sweep_name, "transfer", shape),
                               after=len(arrays) - 1))
    for shape in sorted(transfer_only, key=lambda s: s.tag):
        arrays.append(ArrayJob("transfer", shape, transfer_only[shape],
                               job_name(sweep_name, "transfer", shape)))
    return arrays
