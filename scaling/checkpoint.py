"""Checkpoint folders: `checkpoints/<step>/`, complete only once the marker is written last.

A kill at any moment leaves either a complete checkpoint or a folder without its marker,
which resume ignores (and the next save removes). The last `keep_last` complete ones stay.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from scaling.dist import DistEnv, barrier
from scaling.runfiles import atomic_write_text, now_iso
from scaling.strategies.base import Strategy

MARKER = "COMPLETE"


def _step_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()),
                  key=lambda p: int(p.name))


def latest_complete(root: Path) -> Optional[Path]:
    done = [p for p in _step_dirs(root) if (p / MARKER).is_file()]
    return done[-1] if done else None


def save(root: Path, step: int, strategy: Strategy, extra: dict, env: DistEnv,
         keep_last: int) -> Path:
    """Collective: every rank calls it (sharded engines write one shard per rank)."""
    target = root / f"{step:09d}"
    if env.is_main:
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
    barrier(env)
    strategy.save(target, extra)
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
