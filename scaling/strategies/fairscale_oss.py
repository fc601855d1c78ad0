"""`fairscale`: optimizer-state sharding (OSS), ZeRO-1 with DDP or ZeRO-2 with
ShardedDataParallel (gradients reduced to the rank that owns their optimizer shard).

fairscale's own FullyShardedDataParallel fails on this torch (it looks up a removed
collective: KeyError 'all_gather'); config load refuses `zero_stage: 3` for this strategy
and points at fsdp2. Checkpoints hold the consolidated optimizer state (gathered to rank 0),
so they load at any world size.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.nn.parallel import DistributedDataParallel

from scaling import memory
from scaling.strategies.base import OptimizerFactory, Strategy, ensure_process_group

if TYPE_CHECKING:  # imported when wrapping: fairscale is optional
    from fairscale.nn.data_parallel import ShardedDataParallel


class FairscaleStrategy(Strategy):
    name = "fairscale"

    def wrap(self, model: torch.nn.Module, make_optimizer: OptimizerFactory) -> torch.nn.Module:
        from fairscale.nn.data_parallel import ShardedDataParallel
        from fairscale.optim import OSS

        ensure_process_group(self.env)
        self._module = model.to(self.env.device)
        template = make_optimizer(self._module)  # the recipe's SGD: its class and defaults
        defaults = {k: v for k, v in template.defaults.items()
                    if k in ("lr", "momentum", "dampening", "weight_decay", "nesterov")}
        # OSS gives each parameter, in the order given, to the least-loaded rank: largest
        # first makes the shards even (in model order one 1x1 conv can tip a rank to 1.35x)
        params = sorted(self._module.parameters(), key=lambda p: p.numel(), reverse=True)
        self.optimizer = self._oss = OSS(params, optim=type(template), **defaults)
        self._wrapper: ShardedDataParallel | DistributedDataParallel
        if self.config.shard.zero_stage == 2:
            self.model = self._wrapper = ShardedDataParallel(
                self._module, self._oss, broadcast_buffers=False,
                reduce_buffer_size=memory.sdp_bucket_elements(
                    sum(p.numel() for p in self._module.parameters()), self.env.world_size))
        else:
            ids = [self.env.device.index] if self.env.device.type == "cuda" else None
            self.model = self._wrapper = DistributedDataParallel(self._module, device_ids=ids,
                                                                 broadcast_buffers=False,
                                                                 gradient_as_bucket_view=True)
        self.scaler = self.make_scaler()
        return self.model

    def make_scaler(self):
        if self.config.precision != "fp16":
            return super().make_scaler()
        from fairscale.optim.grad_scaler import ShardedGradScaler

        return ShardedGradScaler()

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    def step(self) -> bool:
        applied = self._apply_gradients()
        # ShardedDataParallel reduces gradients through buckets that are views of .grad:
        # zero them in place (set_to_none would detach the views and skip the reduction)
        self.model.zero_grad(set_to_none=False)
        return applied

    def no_sync(self, sync: bool):
        return super().no_sync(sync) if sync else self._wrapper.no_sync()

    def save(self, directory: Path) -> None:
        self._oss.consolidate_state_dict(recipient_rank=0)  # OSS shards gather on rank 0
        self._save_full_state(directory)

    def load(self, directory: Path) -> None:
        self._load_full_state(directory)

    def state_tensors(self) -> dict[str, list]:
        params = list(self._module.parameters())
        return {"param": params, "grad": [p.grad for p in params],
                "optim": [v for s in self._oss.optim.state.values() for v in s.values()
                          if isinstance(v, torch.Tensor)]}
