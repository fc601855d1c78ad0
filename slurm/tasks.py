"""What one task runs: the same command lines for a Slurm array task and a local run, so the
two executors cannot drift apart. Torch-free."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

PHASES = ("train", "transfer")


@dataclass
class TaskResources:
    nodes: int = 1
    devices_per_node: int = 1
    cpus_per_rank: int = 1
    device: str = "auto"

    @property
    def world_size(self) -> int:
        return self.nodes * self.devices_per_node


def run_resources(run_dir: Path) -> TaskResources:
    config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}
    res = config.get("resources") or {}
    return TaskResources(nodes=int(res.get("nodes", 1)),
                         devices_per_node=int(res.get("devices_per_node", 1)),
                         cpus_per_rank=int(res.get("cpus_per_rank", 1)),
                         device=str(res.get("device", "auto")))


def local_command(run_dir: Path, phase: str, python: str = sys.executable) -> list[str]:
    """argv for one phase of one run on this machine (torchrun for several local ranks)."""
    if phase not in PHASES:
        raise ValueError(f"phase={phase!r} is invalid: use one of {PHASES}")
    config = str(Path(run_dir) / "config.yaml")
    res = run_resources(run_dir)
    if phase == "train" and res.world_size > 1:
        if res.nodes > 1:
            raise ValueError(f"{Path(run_dir).name}: resources.nodes={res.nodes} needs a "
                             "cluster: submit it with `scaling submit`, or set nodes: 1 to "
                             "run it here")
        return [python, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={res.devices_per_node}", "-m", "scaling.cli", phase,
                "--config", config]
    return [python, "-m", "scaling.cli", phase, "--config", config]


def shell_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
