"""Checkpoint folders: `checkpoints/<step>/`, complete only once the marker is written last.

A kill at any moment leaves either a complete checkpoint or a folder without its marker,
which resume ignores (and the next save removes). The last `keep_last` complete ones stay.

Layout: the strategy writes model / optimizer / scaler state its own way (one file for
replicas, DCP shards for FSDP, DeepSpeed's folder for ZeRO); this module adds the loop's
state (`extra.pt`: step, scheduler, loader, skipped steps), each rank's RNG state
(`rng/<rank>.pt`) and `meta.json` (strategy, world size), which resume checks first.

The marker is JSON: {"schema_version", "time", "step", "files": {relative path: SHA-256}}
over every other file of the checkpoint. Resume verifies it before deserialising anything
(DCP's `.metadata` is a pickle; DeepSpeed loads with weights_only=False): a checkpoint
with a missing, extra, truncated or altered file - or an old marker without checksums -
is skipped with a message saying which and why, and the newest one that verifies is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
import shutil
from pathlib import Path
from typing import Optional, Protocol

import torch

from contract import versions
from contract.atomic import atomic_write_text
from contract.config import RunConfig
from contract.errors import RunError
from contract.runfolder import now_iso
from scaling.dist import DistEnv, all_reduce_max, barrier

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
MARKER_SCHEMA = versions.CHECKPOINT_MARKER



class Checkpointable(Protocol):
    """What a checkpoint needs of a strategy (scaling/strategies/base.py `Strategy` has
    it): named here so the checkpoint layer sits below the strategies."""

    name: str
    reshardable: bool
    reshard_hint: str

    @property
    def config(self) -> RunConfig: ...

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> None: ...

def _step_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()),
                  key=lambda p: int(p.name))


def latest_complete(root: Path) -> Optional[Path]:
    """Newest folder with a marker (not verified: `choose` verifies)."""
    done = [p for p in _step_dirs(root) if (p / MARKER).is_file()]
    return done[-1] if done else None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(directory: Path) -> list[str]:
    """Every file of a checkpoint folder but its own marker (a file named like the marker
    deeper down is a file like any other: listed, so one added afterwards is refused)."""
    return sorted(rel for rel in (str(p.relative_to(directory)) for p in directory.rglob("*")
                                  if p.is_file()) if rel != MARKER)


def verify(directory: Path) -> Optional[str]:
    """Why `directory` is not a usable checkpoint (None when every file matches its marker).
    Reads bytes only: nothing is deserialised."""
    try:
        marker = json.loads((directory / MARKER).read_text())
    except FileNotFoundError:
        return f"no {MARKER} marker (the save did not finish)"
    except (OSError, ValueError):
        marker = None
    if not isinstance(marker, dict) or not isinstance(marker.get("files"), dict):
        return (f"its {MARKER} marker records no checksums (corrupt, or written before "
                "checksums were recorded), so its files cannot be verified")
    recorded = marker["files"]
    if "meta.json" not in recorded or not (directory / "meta.json").is_file():
        return "meta.json is missing"
    present = set(_files(directory))
    for rel in sorted(recorded):
        if rel not in present:
            return f"{rel} is missing"
    unlisted = sorted(present - set(recorded))
    if unlisted:
        return f"{unlisted[0]} is not listed in its {MARKER} marker (added afterwards)"
    for rel, digest in sorted(recorded.items()):
        if sha256(directory / rel) != digest:
            return f"{rel} does not match its recorded SHA-256 (truncated or modified)"
    return None


def choose(root: Path, env: DistEnv) -> Optional[Path]:
    """Collective: the newest checkpoint that verifies (rank 0 checks, every rank gets the
    same answer); each newer one skipped is named on stderr with the reason."""
    step = -1.0
    if env.is_main:
        for candidate in reversed([p for p in _step_dirs(root) if (p / MARKER).is_file()]):
            why = verify(candidate)
            if why is None:
                step = float(int(candidate.name))
                break
            log.warning("checkpoint %s skipped: %s", candidate, why)
    step = all_reduce_max(step, env)
    return None if step < 0 else root / f"{int(step):09d}"


def save(root: Path, step: int, strategy: Checkpointable, extra: dict, env: DistEnv,
         keep_last: int) -> Path:
    """Collective: every rank calls it (sharded engines write one shard per rank). A write
    that fails (disk full, quota) removes the partial folder and raises a one-line
    RunError on the rank that saw it."""
    target = root / f"{step:09d}"
    try:
        return _save(root, target, step, strategy, extra, env, keep_last)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
        if env.is_main:
            shutil.rmtree(target, ignore_errors=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
            " ".join(str(exc).split())[:160]
        try:
            free = f"; {shutil.disk_usage(root).free / 2**20:.0f} MiB free there"
        except OSError:
            free = ""
        raise RunError(f"checkpoint {target} could not be written ({reason}{free}): free "
                       "space on that file system (or raise the quota or file-size limit), "
                       "then resume; the previous complete checkpoint is kept") from None


def _save(root: Path, target: Path, step: int, strategy: Checkpointable, extra: dict, env: DistEnv,
          keep_last: int) -> Path:
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
        files = {rel: sha256(target / rel) for rel in _files(target)}
        atomic_write_text(target / MARKER, json.dumps(
            {"schema_version": MARKER_SCHEMA, "time": now_iso(), "step": step,
             "files": files}, indent=0) + "\n")
        complete = [p for p in _step_dirs(root) if (p / MARKER).is_file()]
        for old in complete[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        for partial in (p for p in _step_dirs(root) if not (p / MARKER).is_file()):
            shutil.rmtree(partial, ignore_errors=True)
    barrier(env)
    return target


def load(directory: Path, strategy: Checkpointable, env: DistEnv) -> dict:
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
        state = load_tensors(rng)
        torch.set_rng_state(state["torch"])
        if state.get("cuda") is not None and env.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"])
    return load_tensors(directory / "extra.pt")


def load_tensors(path: Path, map_location=None, fix: str = "remove it (or its checkpoint "
                 "folder)"):
    """torch.load with weights_only=True; a file holding anything else is refused in one
    line that names the file, what it tried to load and `fix` (never suggesting
    weights_only=False: a file this code did not write is not to be trusted)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"(?:Unsupported global|Unsupported operand)[^\n.]*", str(exc))
        what = f" ({found.group(0).strip()})" if found else ""
        raise RunError(f"{path}: refused to load: it holds objects other than tensors and "
                       f"plain containers{what}; it was not written by wsl-scaling or was "
                       f"altered: {fix}") from None
