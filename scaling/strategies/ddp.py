"""`ddp`: the reference strategy (full replicas, gradients all-reduced by DDP).

Gradients are views of DDP's all-reduce buckets (`gradient_as_bucket_view`), so the
buckets are not a second copy of them (and `memory_report`, counting gradient storages,
counts the buckets). Batch-norm buffers are per rank (`broadcast_buffers=False`) so that a
rank's statistics come from its own micro-batches, as in every other strategy here; a
checkpoint holds rank 0's copy, and every rank resumes from it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from scaling.strategies.base import OptimizerFactory, Strategy


class DDPStrategy(Strategy):
    name = "ddp"

    def wrap(self, model: torch.nn.Module, make_optimizer: OptimizerFactory) -> torch.nn.Module:
        model = model.to(self.env.device)
        self._module = model
        self._ddp: DistributedDataParallel | None = None  # only when distributed
        if self.env.distributed:
            ids = [self.env.device.index] if self.env.device.type == "cuda" else None
            # gradients as views of the all-reduce buckets: one copy of them, not two
            model = self._ddp = DistributedDataParallel(model, device_ids=ids,
                                                        broadcast_buffers=False,
                                                        gradient_as_bucket_view=True)
        self.model = model
        self.optimizer = make_optimizer(self._module)
        self.scaler = self.make_scaler()
        return model

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    def no_sync(self, sync: bool):
        if self._ddp is not None and not sync:
            return self._ddp.no_sync()
        return super().no_sync(sync)

    def save(self, directory: Path) -> None:
        self._save_full_state(directory)  # replicas are identical: one copy is the whole state

    def load(self, directory: Path) -> None:
        self._load_full_state(directory)
