"""Sharded checkpoints through `torch.distributed.checkpoint` (shared by fsdp1 and fsdp2).

DCP stores each rank's shards plus a global plan, so a checkpoint written by W ranks loads
at any other world size (it reshards on load). Replicated tensors - batch-norm buffers,
which are per rank in training - are written once (rank 0's copy) and every rank resumes
from it, as under ddp.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from models import Trunk
from scaling.dist import DistEnv
from scaling.strategies.base import Strategy, check_shapes


def save(model, optimizer, directory: Path) -> None:
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(directory / "dcp"))


def load(model, optimizer, directory: Path) -> None:
    model_sd, optim_sd = get_state_dict(model, optimizer)
    _check_model_shapes(directory, model_sd)
    state: dict[str, Any] = {"model": model_sd, "optim": optim_sd}  # loaded in place
    dcp.load(state, checkpoint_id=str(directory / "dcp"))
    set_state_dict(model, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optim"])


def _check_model_shapes(directory: Path, model_sd: dict) -> None:
    """The global shapes DCP recorded for the model against the model this config builds
    (sharded tensors report their global shape), before anything is read: a hand-edited
    width is one line (strategies/base.py check_shapes), not DCP's planner error."""
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    meta = dcp.FileSystemReader(str(directory / "dcp")).read_metadata().state_dict_metadata
    saved = {key[len("model."):]: tuple(m.size) for key, m in meta.items()
             if key.startswith("model.") and isinstance(m, TensorStorageMetadata)}
    current = {k: tuple(v.shape) for k, v in model_sd.items() if isinstance(v, torch.Tensor)}
    check_shapes(directory, saved, current)


def full_trunk(model, trunk: Trunk) -> dict[str, torch.Tensor]:
    """Consolidated weights on rank 0 (collective; other ranks get an empty dict); `trunk`
    (the unwrapped model) says which keys are its own."""
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                cpu_offload=True))
    # a full, CPU-offloaded model state dict holds plain tensors only
    return {k: cast(torch.Tensor, v) for k, v in full.items() if trunk.is_trunk_key(k)}


class DCPState:
    """Mixin for the FSDP strategies: sharded model + optimizer through DCP (reshardable to
    another world size), the small loss-scaler state on rank 0, a consolidated trunk."""

    # what the strategy it is mixed into holds (see Strategy)
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    env: DistEnv

    def save(self, directory: Path) -> None:
        save(self.model, self.optimizer, directory)
        if self.env.is_main:
            torch.save({"scaler": self.scaler.state_dict()}, directory / "scaler.pt")

    def load(self, directory: Path) -> None:
        load(self.model, self.optimizer, directory)
        from scaling.checkpoint import load_tensors

        payload = load_tensors(directory / "scaler.pt")
        self.scaler.load_state_dict(payload["scaler"])

    def trunk_state_dict(self) -> dict[str, torch.Tensor]:
        unwrapped = cast(Strategy, self).module  # mixed into a Strategy
        return full_trunk(self.model, cast(Trunk, unwrapped))
