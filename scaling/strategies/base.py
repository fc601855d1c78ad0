"""The strategy protocol: every sharding engine plugs in behind these few methods.

The training loop never asks which engine it runs under: it calls `wrap`, then per step
`backward(loss)` inside `no_sync(sync)` for each micro-batch and `step()`, and
`save`/`load` at checkpoints (the loop's own state - scheduler, loader, RNG - is written
by scaling/checkpoint.py, so a strategy only holds model, optimizer and loss scaler).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import cast

import torch

from contract.config import RunConfig
from models import Trunk
from scaling.dist import DistEnv

OptimizerFactory = Callable[[torch.nn.Module], torch.optim.Optimizer]


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """The part of `t` this rank holds (a DTensor's local shard, else `t` itself)."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def storage_bytes(tensors: Iterable) -> int:
    """Bytes of the distinct storages behind `tensors` (views and aliases count once)."""
    seen, total = set(), 0
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            continue
        t = local_tensor(t)
        if t.device.type == "meta":  # bookkeeping without memory
            continue
        storage = t.untyped_storage()
        key = (storage.data_ptr(), t.device)
        if storage.nbytes() and key not in seen:
            seen.add(key)
            total += storage.nbytes()
    return total


def ensure_process_group(env: DistEnv) -> None:
    """Sharding engines need a process group even at one rank (e.g. a 2 -> 1 resume)."""
    import torch.distributed as tdist

    if not tdist.is_initialized():
        backend = "nccl" if env.device.type == "cuda" else "gloo"
        tdist.init_process_group(backend, store=tdist.HashStore(), rank=0, world_size=1)


def contiguous_on(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` on `device` with contiguous parameters, which sharding engines need (they
    flatten parameters or shard them by rows)."""
    # torch's stubs lack Module.to(device, memory_format=...), which Module.to accepts
    return model.to(device, memory_format=torch.contiguous_format)  # type: ignore[call-overload]


class Strategy:
    """Base class; subclasses own how parameters, gradients and optimizer state are held."""

    name = "base"
    reshardable = True
    """Whether a checkpoint written at one world size loads at another."""
    reshard_hint = ""
    """When not reshardable: the conversion to run (named in the refusal)."""

    # set by `wrap` (nothing uses a strategy before it wrapped its model)
    model: torch.nn.Module
    """What the loop calls: the engine's wrapper around the model (later maybe compiled)."""
    optimizer: torch.optim.Optimizer
    """The optimizer the scheduler drives."""
    scaler: torch.amp.GradScaler
    """fp16 loss scaling (disabled, a no-op, in other precisions)."""

    def __init__(self, config: RunConfig, env: DistEnv) -> None:
        self.config = config
        self.env = env

    # -- set-up --------------------------------------------------------------------------
    def wrap(self, model: torch.nn.Module, make_optimizer: OptimizerFactory) -> torch.nn.Module:
        raise NotImplementedError

    @property
    def module(self) -> torch.nn.Module:
        """The unwrapped model (for export and features)."""
        return self.model

    def make_scaler(self) -> torch.amp.GradScaler:
        """Dynamic loss scaling for fp16 (a disabled no-op scaler otherwise)."""
        return torch.amp.GradScaler(self.env.device.type,
                                    enabled=self.config.precision == "fp16")

    # -- one step ------------------------------------------------------------------------
    def no_sync(self, sync: bool):
        """Context for a micro-batch: skip the gradient reduction unless `sync`."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        if self.scaler.is_enabled():
            loss = self.scaler.scale(loss)
        loss.backward()

    def step(self) -> bool:
        """Apply the accumulated gradients; False when the step was skipped (fp16 overflow)."""
        applied = self._apply_gradients()
        self.optimizer.zero_grad(set_to_none=True)
        return applied

    def _apply_gradients(self) -> bool:
        """Optimizer step through the loss scaler when fp16; False when it skipped."""
        if self.scaler.is_enabled():
            before = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            return self.scaler.get_scale() >= before
        self.optimizer.step()
        return True

    def _save_full_state(self, directory: Path) -> None:
        """Rank 0 writes model, optimizer and scaler whole (replicated model state)."""
        if self.env.is_main:
            torch.save({"model": self.module.state_dict(),
                        "optimizer": self.optimizer.state_dict(),
                        "scaler": self.scaler.state_dict()}, directory / "state.pt")

    def _load_full_state(self, directory: Path) -> None:
        from scaling.checkpoint import load_tensors

        payload = load_tensors(directory / "state.pt", map_location=self.env.device)
        check_shapes(directory, {k: v.shape for k, v in payload["model"].items()},
                     {k: v.shape for k, v in self.module.state_dict().items()})
        self.module.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scaler.load_state_dict(payload["scaler"])

    # -- state -----------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Collective: write model, optimizer and scaler state into `directory`."""
        raise NotImplementedError

    def load(self, directory: Path) -> None:
        """Collective: restore what `save` wrote (possibly at another world size)."""
        raise NotImplementedError

    def trunk_state_dict(self) -> dict[str, torch.Tensor]:
        """Full (consolidated) trunk weights on rank 0; collective where the engine shards."""
        return cast(Trunk, self.module).trunk_state_dict()  # a registered model: a Trunk

    def state_tensors(self) -> dict[str, list]:
        """The parameter, gradient and optimizer-state tensors this rank holds."""
        params = list(self.model.parameters())
        return {"param": params, "grad": [p.grad for p in params],
                "optim": [v for s in self.optimizer.state.values() for v in s.values()]}

    def memory_report(self) -> dict[str, int]:
        """Bytes of parameters, gradients and optimizer state this rank actually holds,
        counted from the storages of local shards (aliases once)."""
        held = self.state_tensors()
        return {f"{k}_bytes": storage_bytes(v) for k, v in held.items()}


def autocast(config: RunConfig, device: torch.device):
    """Mixed precision by autocast: weights and batch norm stay fp32 (CPU batch norm rejects
    mixed dtypes), convolutions and the classifier run in bf16 / fp16."""
    if config.precision == "fp32":
        return contextlib.nullcontext()
    if config.precision not in ("bf16", "fp16"):  # `auto` is resolved before any strategy
        raise AssertionError(f"precision={config.precision!r} reached autocast unresolved")
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def check_shapes(directory: Path, saved: dict, current: dict) -> None:
    """Refuse (one line) a checkpoint whose weights do not fit the model this run's config
    builds: a hand-edited config.yaml (model.width_per_group changed on a cancelled run)
    would otherwise die in `load_state_dict` with a size-mismatch dump of every layer."""
    from contract.errors import RunError

    different = [k for k in current if k in saved and tuple(saved[k]) != tuple(current[k])]
    missing = [k for k in current if k not in saved]
    if not different and not missing:
        return
    if different:
        k = different[0]
        what = (f"{k} is {list(saved[k])} there and {list(current[k])} here"
                f"{f' ({len(different)} tensors differ)' if len(different) > 1 else ''}")
    else:
        what = f"it has no {missing[0]} ({len(missing)} tensors missing)"
    raise RunError(f"checkpoint {directory} does not match the model config.yaml describes "
                   f"({what}): was model.* edited after the run started? put config.yaml "
                   f"back as the run began, or remove {directory.parent} to start over")
