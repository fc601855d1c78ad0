"""`fsdp2`: per-parameter sharding with `torch.distributed.fsdp.fully_shard`.

Each residual block is one FSDP unit, then the root (stem, classifier and whatever is left).
`reshard_after_forward=True` frees a block's gathered parameters after its forward and
re-gathers them in backward (ZeRO-3); `False` keeps them until backward (ZeRO-2: one
all-gather per step, more memory). The root keeps its parameters gathered between forward
and backward: they are the first ones backward needs, so resharding them buys nothing.

Precision is autocast with fp32 sharded parameters (no `MixedPrecisionPolicy` param dtype):
batch norm keeps fp32 weights and statistics, which CPU kernels require, and gradients are
reduced in fp32. fp16 uses `ShardedGradScaler`, which agrees on overflow across ranks.
"""

from __future__ import annotations

import contextlib

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

from scaling.strategies import _dcp
from scaling.strategies.base import OptimizerFactory, Strategy, contiguous_on, ensure_process_group
from scaling.strategies.policy import blocks


class FSDP2Strategy(_dcp.DCPState, Strategy):
    name = "fsdp2"

    def wrap(self, model: torch.nn.Module, make_optimizer: OptimizerFactory) -> torch.nn.Module:
        ensure_process_group(self.env)
        shard = self.config.shard
        mesh = init_device_mesh(self.env.device.type, (torch.distributed.get_world_size(),))
        zero3 = shard.zero_stage == 3 and shard.reshard_after_forward
        offload = CPUOffloadPolicy() if shard.offload else OffloadPolicy()  # the default: none
        # fully_shard needs contiguous parameters; channels_last inputs still make the
        # convolutions run channels_last (the input's format decides)
        model = contiguous_on(model, self.env.device)
        for block in blocks(model):
            fully_shard(block, mesh=mesh, reshard_after_forward=zero3, offload_policy=offload)
        fully_shard(model, mesh=mesh, reshard_after_forward=False, offload_policy=offload)
        self.model = model
        self.optimizer = make_optimizer(model)
        self.scaler = self.make_scaler()
        return model

    def make_scaler(self):
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        return ShardedGradScaler(self.env.device.type,
                                 enabled=self.config.precision == "fp16")

    def no_sync(self, sync: bool):
        if sync:
            return contextlib.nullcontext()
        return _gradient_sync_off(self.model)



@contextlib.contextmanager
def _gradient_sync_off(model):
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)
