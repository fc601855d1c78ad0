"""Checkpoint folders: `checkpoints/<step>/`, complete only once the marker is written last.

A kill at any moment leaves either a complete checkpoint or a folder without its marker,
which resume ignores (and the next save removes). The last `keep_last` complete ones stay.

Layout: the strategy writes model / optimizer / scaler state its own way (one file for
replicas, DCP shards for FSDP, DeepSpeed's folder for ZeRO); this module adds the loop's
state (`extra.pt`: step, scheduler, loader, skipped steps), each rank's RNG state
(`rng/<rank>.pt`) and `meta.json` (strategy, world size), which resume checks first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import torch

from scaling.dist import DistEnv, barrier
from scaling.errors import RunError
from scaling.runfiles import atomic_write_text, now_iso

MARKER = "COMPLETE"


def _step_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()),
                  key=lambda p: int(p.name))


def latest_complete(root: Path) -> Optional[Path]:
    done = [p for p in _step_dirs(root) if (p / MARKER).is_file()]
    return done[-1] if done else None


def save(root: Path, step: int, strategy, extra: dict, env: DistEnv, keep_last: int) -> Path:
    """Collective: every rank calls it (sharded engines write one shard per rank)."""
    target = root / f"{step:09d}"
    if env.is_main:
        if target.exists():
            shutil.rmtree(target)
        (target / "rng").mkdir(parents=True)
    barrier(env)
    strategy.save(target)
    torch.save({"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state() if env.device.type == "cuda" else None},
               target / "rng" / f"{env.rank}.pt")
    if env.is_main:
        torch.save(extra, target / "extra.pt")
        atomic_write_text(target / "meta.json", json.dumps(
            {"step": step, "strategy": strategy.name, "world_size": env.world_size,
             "precision": strategy.config.precision}) + "\n")
    barrier(env)
    if env.is_main:
        atomic_write_text(target / MARKER, now_iso() + "\n")
        complete = [p for p in _step_dirs(root) if (p / MARKER).is_file()]
        for old in complete[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        for partial in (p for p in _step_dirs(root) if not (p / MARKER).is_file()):
            shutil.rmtree(partial, ignore_errors=True)
    barrier(env)
    return target


def load(directory: Path, strategy, env: DistEnv) -> dict:
    """Collective: restore the strategy's state and return the loop's (`extra`).

    Refuses, before touching any state, a checkpoint of another strategy, or one written at
    another world size by an engine that cannot reshard (naming the conversion to run)."""
    meta = json.loads((directory / "meta.json").read_text())
    if meta["strategy"] != strategy.name:
        raise RunError(f"checkpoint {directory} was written by shard.strategy="
                       f"{meta['strategy']!r}, this run uses {strategy.name!r}: resume with "
                       "the strategy that wrote it, or remove the checkpoints folder")
    if meta["world_size"] != env.world_size and not strategy.reshardable:
        raise RunError(f"checkpoint {directory} was written at world size "
                       f"{meta['world_size']} and {strategy.name} cannot reshard it to "
                       f"{env.world_size}: {strategy.reshard_hint}")
    strategy.load(directory)
    rng = directory / "rng" / f"{env.rank}.pt"
    if meta["world_size"] == env.world_size and rng.is_file():
        state = torch.load(rng, weights_only=True)
        torch.set_rng_state(state["torch"])
        if state.get("cuda") is not None and env.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"])
    return torch.load(directory / "extra.pt", weights_only=True)
