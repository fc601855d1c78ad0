"""`fsdp1`: `FullyShardedDataParallel` (flat parameters), one unit per residual block.

`shard.zero_stage` 3 -> FULL_SHARD (SHARD_GRAD_OP when `reshard_after_forward` is false),
2 -> SHARD_GRAD_OP, 0 -> NO_SHARD (DDP-like, for comparison). Optimizer state lives on the
flat shards, so the optimizer is built after wrapping. Precision as in fsdp2: autocast over
fp32 shards, `ShardedGradScaler` for fp16.
"""

from __future__ import annotations

import torch
from torch.distributed.fsdp import CPUOffload, FullyShardedDataParallel, ShardingStrategy
from torch.distributed.fsdp.wrap import ModuleWrapPolicy

from scaling.strategies import _dcp
from scaling.strategies.base import OptimizerFactory, Strategy, contiguous_on, ensure_process_group
from scaling.strategies.policy import BLOCK_TYPES


def sharding_strategy(zero_stage: int, reshard_after_forward: bool) -> ShardingStrategy:
    if zero_stage == 0:
        return ShardingStrategy.NO_SHARD
    if zero_stage == 3 and reshard_after_forward:
        return ShardingStrategy.FULL_SHARD
    return ShardingStrategy.SHARD_GRAD_OP


class FSDP1Strategy(_dcp.DCPState, Strategy):
    name = "fsdp1"

    def wrap(self, model: torch.nn.Module, make_optimizer: OptimizerFactory) -> torch.nn.Module:
        ensure_process_group(self.env)
        shard = self.config.shard
        self._module = model
        model = self._fsdp = FullyShardedDataParallel(
            contiguous_on(model, self.env.device),
            auto_wrap_policy=ModuleWrapPolicy(set(BLOCK_TYPES)),
            sharding_strategy=sharding_strategy(shard.zero_stage, shard.reshard_after_forward),
            cpu_offload=CPUOffload(offload_params=shard.offload),
            device_id=self.env.device, use_orig_params=False)
        self.model = model
        self.optimizer = make_optimizer(model)
        self.scaler = self.make_scaler()
        return model

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    def make_scaler(self):
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        return ShardedGradScaler(self.env.device.type,
                                 enabled=self.config.precision == "fp16")

    def no_sync(self, sync: bool):
        return super().no_sync(sync) if sync else self._fsdp.no_sync()
