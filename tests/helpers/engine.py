"""Tiny run configs and subprocess launchers shared by the engine, CLI and Slurm
tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "name": "tiny", "seed": 0,
    "model": {"arch": "resnext", "depth": 11, "stages": 3, "cardinality": 4,
              "width_per_group": 4, "base_width": 16, "stem": "small", "image_size": 16},
    "data": {"images": 256, "vocab": 40},
    "optim": {"global_batch": 16, "images_seen": 320, "lr_per_256": 0.4},
    "resources": {"device": "cpu", "cpus_per_rank": 1},
    "checkpoint": {"every_steps": 5, "keep_last": 2},
    "transfer": {"train_images": 200, "test_images": 200},
    "logging": {"every_steps": 1, "tensorboard": False, "progress": False},
}


def make_run(tmp_path: Path, name: str = "run", **overrides) -> Path:
    config = json.loads(json.dumps(TINY))
    for dotted, value in overrides.items():
        node = config
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    run_dir = tmp_path / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return run_dir


def env() -> dict:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))}
    clean["OMP_NUM_THREADS"] = "1"
    return clean


def train_cmd(run_dir: Path, nproc: int = 1, *extra: str) -> list[str]:
    cli = ["-m", "scaling.cli", "train", "--config", str(run_dir / "config.yaml"), *extra]
    if nproc == 1:
        return [sys.executable, *cli]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", *cli]


def train(run_dir: Path, nproc: int = 1, *extra: str, check: bool = True):
    proc = subprocess.run(train_cmd(run_dir, nproc, *extra), env=env(), capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"train failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_cells(cells: list[str], device: str = "cpu", nproc: int = 2, steps: int = 3,
              track: bool = False) -> dict:
    """Train each `strategy:precision[:key=value...]` cell a few steps through
    tests/scaling/matrix_worker.py, all in one torchrun; {cell: result} (losses, per-rank
    memory)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "tests.scaling.matrix_worker", "--device", device,
           "--steps", str(steps), *(["--track"] if track else []), "--cells", *cells]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=900,
                          check=False, cwd=REPO)  # -m: the worker imports `tests.*` from REPO
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("CELL "):
            cell = json.loads(line[5:])
            out[cell["cell"]] = cell
    assert out, proc.stderr[-3000:]
    return out


def cell(shard: dict, precision: str = "fp32") -> str:
    """The matrix_worker cell of a shard section, e.g. `deepspeed:fp32:zero_stage=2`."""
    opts = "".join(f":{k}={str(v).lower()}" for k, v in shard.items() if k != "strategy")
    return f"{shard['strategy']}:{precision}{opts}"


def losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


class StopAfter:
    """SignalFlags stand-in that reports SIGTERM from the n-th step boundary on (the
    trainer checkpoints there and ends `cancelled`, as on a real SIGTERM)."""

    def __init__(self, n: int) -> None:
        self.n, self.reads = n, 0

    def install(self):
        return self

    def restore(self) -> None:
        pass

    @property
    def code(self) -> float:
        self.reads += 1
        return 2.0 if self.reads >= self.n else 0.0
