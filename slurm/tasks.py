"""What one task runs: one rendered shell script per phase, run both by every Slurm array
task and by the local executor, so the two cannot drift apart. Each submission has its own
copy (`<sweep>/slurm/submit-NNN/<phase>_task.sh`: queued tasks read only their own, so a
later submission or dry run never changes what they run); the local executor uses
`<sweep>/slurm/<phase>_task.sh`.

    <phase>_task.sh slurm TASK_LIST        the run is line SLURM_ARRAY_TASK_ID+1 of TASK_LIST;
                                           ranks start with srun, one task per device
    <phase>_task.sh local RUN_ID [NPROC]   here; torchrun when NPROC > 1

The script runs its launcher in the background and forwards SIGTERM/SIGUSR2 to it, so a
scancel or a requeue reaching the batch shell never kills the shell before the ranks have
checkpointed. Its exit status is the phase's (0 only when `done`). Python starts through
`-c "$NOCWD" MODULE` (runpy, like `-m`, but with the working directory taken off the
import path: a `data/` or `models/` folder where the user stands must not shadow the
packages; `-P` would do it but needs Python 3.11). Torch-free.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Union

from contract.atomic import atomic_write_text
from contract.config import ResourcesConfig, load_run_config
from contract.errors import ConfigError
from contract.jobenv import SHELL_JOB_ID, SHELL_RESTARTS
from contract.runfolder import SAFE_NAME
from contract.runfolder import check_run_id as _check_run_id

PHASES = ("train", "transfer")
RUN_ID = SAFE_NAME
NOCWD = ('import runpy, sys; sys.path[:1] = [] if sys.path[:1] == [""] else sys.path[:1]; '
         'runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)')
"""`python -c NOCWD MODULE ARGS` runs MODULE as `python -m` does, but without the working
directory on sys.path, so a `data/` or `models/` folder there never shadows the package."""


def run_resources(run_dir: Path) -> ResourcesConfig:
    """resources of a run's config.yaml, read (no torch) by the contract's one reader, so
    the executors accept and refuse exactly what `scaling sweep` and `scaling train` do;
    a refusal names the file."""
    path = Path(run_dir) / "config.yaml"
    try:
        res = load_run_config(path).resources
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None
    return res


def check_run_id(run_id: str) -> str:
    return _check_run_id(run_id)


_TEMPLATE = r"""#!/usr/bin/env bash
# wsl-scaling {phase} task (rendered by `scaling submit` and `scaling run --local`; do not edit).
#   {phase}_task.sh slurm TASK_LIST        run = line SLURM_ARRAY_TASK_ID+1 of TASK_LIST (srun ranks)
#   {phase}_task.sh local RUN_ID [NPROC]   here (torchrun when NPROC > 1)
# Exit status 0 only when the phase ended `done`, so aftercorr never starts on an unfinished trunk.
set -uo pipefail
SWEEP={sweep}
PYTHON={python}
PHASE={phase}
MODE="${{1:-}}"
NPROC=1
case "$MODE" in
  slurm)
    TASKS="${{2:?usage: $0 slurm TASK_LIST}}"
    IDX="${{SLURM_ARRAY_TASK_ID:?$0 slurm runs as a Slurm array task}}"
    RUN_ID=$(sed -n "$((IDX + 1))p" "$TASKS") ;;
  local)
    RUN_ID="${{2:?usage: $0 local RUN_ID [NPROC]}}"
    NPROC="${{3:-1}}" ;;
  *) echo "usage: $0 slurm TASK_LIST | local RUN_ID [NPROC]" >&2; exit 2 ;;
esac
if ! [[ "$RUN_ID" =~ ^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$ ]] || ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
  echo "wsl-scaling: invalid run id or rank count: '$RUN_ID' '$NPROC'" >&2; exit 2
fi
CONFIG="$SWEEP/runs/$RUN_ID/config.yaml"
# `python -m MODULE` without the working directory on sys.path (runpy, as -m does)
NOCWD={nocwd}
export PYTHONUNBUFFERED=1
export OMP_NUM_THREADS="${{SLURM_CPUS_PER_TASK:-${{OMP_NUM_THREADS:-1}}}}"
if [ "$MODE" = slurm ]; then
  # one rank per device; each rank finds rank 0 on the job's first host (scaling/dist.py)
  LAUNCH=(srun {srun_shape} --cpus-per-task="${{SLURM_CPUS_PER_TASK:-1}}" --kill-on-bad-exit=1
          "$PYTHON" -c "$NOCWD" scaling.cli "$PHASE" --config "$CONFIG")
elif [ "$NPROC" -gt 1 ]; then
  LAUNCH=("$PYTHON" -c "$NOCWD" torch.distributed.run --standalone --nproc_per_node="$NPROC"
          --no-python "$PYTHON" -c "$NOCWD" scaling.cli "$PHASE" --config "$CONFIG")
else
  LAUNCH=("$PYTHON" -c "$NOCWD" scaling.cli "$PHASE" --config "$CONFIG")
fi
JOB="{job_id_sh}"
note() {{ echo "wsl-scaling: $* phase=$PHASE run=$RUN_ID job=$JOB restarts={restarts_sh} host=$(hostname) at=$(date +%s.%N)"; }}
CHILD=""
STOP=""
forward() {{ if [ -n "$CHILD" ]; then kill -s "$1" "$CHILD" 2>/dev/null || true; else STOP="$1"; fi; }}
trap 'forward TERM' TERM INT
trap 'forward USR2' USR2
note start
[ -z "$STOP" ] || {{ note "end rc=143 (signalled before start)"; exit 143; }}
"${{LAUNCH[@]}}" &
CHILD=$!
RC=0
wait "$CHILD" || RC=$?
while kill -0 "$CHILD" 2>/dev/null; do RC=0; wait "$CHILD" || RC=$?; done
note "end rc=$RC"
exit "$RC"
"""

# srun's shape per phase: train uses the whole allocation (one task per device on every
# node); transfer one node's devices (its allocation is one node).
_SRUN = {"train": '--ntasks="$SLURM_NTASKS"', "transfer": '--nodes=1 --ntasks="$SLURM_NTASKS"'}


def task_script(sweep_dir: Union[str, Path], phase: str, python: str) -> str:
    if phase not in PHASES:
        raise ConfigError(f"phase={phase!r} is invalid: use one of {PHASES}")
    return _TEMPLATE.format(phase=phase, sweep=shlex.quote(str(Path(sweep_dir).resolve())),
                            python=shlex.quote(python), srun_shape=_SRUN[phase],
                            nocwd=shlex.quote(NOCWD), job_id_sh=SHELL_JOB_ID,
                            restarts_sh=SHELL_RESTARTS)


def task_script_path(sweep_dir: Union[str, Path], phase: str,
                     folder: Union[str, Path, None] = None) -> Path:
    """`folder/<phase>_task.sh` (a submission's own), else the local executor's."""
    base = Path(folder).resolve() if folder is not None else Path(sweep_dir).resolve() / "slurm"
    return base / f"{phase}_task.sh"


def write_task_scripts(sweep_dir: Union[str, Path], python: str,
                       folder: Union[str, Path, None] = None) -> dict[str, Path]:
    """(Re)write both task scripts atomically: a running bash keeps reading its old copy."""
    out = {}
    for phase in PHASES:
        path = task_script_path(sweep_dir, phase, folder)
        text = task_script(sweep_dir, phase, python)
        if not path.is_file() or path.read_text() != text:
            atomic_write_text(path, text)
        path.chmod(0o755)
        out[phase] = path
    return out


def local_argv(sweep_dir: Union[str, Path], run_dir: Path, phase: str) -> list[str]:
    """argv of one phase of one run on this machine: the phase's task script, local mode."""
    res = run_resources(run_dir)
    if phase == "train" and res.nodes > 1:
        raise ConfigError(f"{Path(run_dir).name}: resources.nodes={res.nodes} needs a cluster: "
                          "submit it with `scaling submit`, or set nodes: 1 to run it here")
    nproc = res.devices_per_node  # transfer shards features / fine-tunes on one node's ranks
    return ["bash", str(task_script_path(sweep_dir, phase)), "local",
            check_run_id(Path(run_dir).name), str(nproc)]
