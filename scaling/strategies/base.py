"""The strategy protocol: every sharding engine plugs in behind these few methods.

The training loop never asks which engine it runs under; it calls `wrap`, then per step
`backward(loss, sync)` for each micro-batch and `step()`, and `save`/`load` at checkpoints.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import torch

from scaling.config import RunConfig
from scaling.dist import DistEnv

OptimizerFactory = Callable[[torch.nn.Module], torch.optim.Optimizer]


class Strategy:
    """Base class; subclasses own how parameters, gradients and optimizer state are held."""

    name = "base"

    def __init__(self, config: RunConfig, env: DistEnv) -> None:
        self.config = config
        self.env = env
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    # -- set-up --------------------------------------------------------------------------
    def wrap(self, model: torch.nn.Module, make_optimizer: OptimizerFactory) -> torch.nn.Module:
        raise NotImplementedError

    @property
    def module(self) -> torch.nn.Module:
        """The unwrapped model (for export and features)."""
        return self.model

    # -- one step ------------------------------------------------------------------------
    def no_sync(self, sync: bool):
        """Context for a micro-batch: skip the gradient all-reduce unless `sync`."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> bool:
        """Apply the accumulated gradients; False when the step was skipped (fp16 overflow)."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True

    # -- state -----------------------------------------------------------------------------
    def save(self, directory: Path, extra: dict) -> None:
        raise NotImplementedError

    def load(self, directory: Path) -> dict:
        raise NotImplementedError

    def trunk_state_dict(self) -> dict[str, torch.Tensor]:
        """Full (consolidated) trunk weights on rank 0; collective where the engine shards."""
        return self.module.trunk_state_dict()

    def memory_report(self) -> dict[str, int]:
        """Bytes of parameters, gradients and optimizer state this rank actually holds."""
        def nbytes(tensors):
            seen, total = set(), 0
            for t in tensors:
                if t is None or not isinstance(t, torch.Tensor):
                    continue
                key = (t.untyped_storage().data_ptr(), t.device)
                if key not in seen:
                    seen.add(key)
                    total += t.untyped_storage().nbytes()
            return total

        params = list(self.model.parameters())
        opt = [v for s in self.optimizer.state.values() for v in s.values()]
        return {"param_bytes": nbytes(params), "grad_bytes": nbytes(p.grad for p in params),
                "optim_bytes": nbytes(opt)}


def autocast(config: RunConfig, device: torch.device):
    """Mixed precision by autocast (weights and batch-norm stay fp32, as CPU kernels need)."""
    if config.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
