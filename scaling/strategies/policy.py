"""Which modules are sharding / checkpointing units, and how the model is prepared.

One decision per file: this holds only the *policy* (residual blocks are the units: FSDP
shards each block and the root, activation checkpointing recomputes each block, compile
sees the whole model), never anything about training. Blocks are the natural unit for a
ResNeXt: a block is small enough that one unsharded block at a time bounds ZeRO-3's peak,
and large enough that the per-unit all-gather is not latency bound.
"""

from __future__ import annotations

import functools
from typing import cast

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from contract.config import RunConfig

BLOCK_TYPES = (Bottleneck, BasicBlock)


def blocks(model: nn.Module) -> list[nn.Module]:
    """Residual blocks in forward order (the units of sharding and recomputation)."""
    return [m for m in model.modules() if isinstance(m, BLOCK_TYPES)]


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each block in backward (non-reentrant checkpoint, so FSDP hooks still fire).

    Batch norm running statistics are updated again during recomputation; the loss is not
    affected (training mode uses batch statistics), only the running averages move twice.
    """
    from torch.utils.checkpoint import checkpoint

    for block in blocks(model):
        forward = block.forward

        @functools.wraps(forward)
        def checkpointed(*args, _forward=forward, **kwargs):
            return checkpoint(_forward, *args, use_reentrant=False, **kwargs)

        block.forward = checkpointed


def prepare(model: nn.Module, config: RunConfig) -> nn.Module:
    """Memory format and activation checkpointing: done before any strategy wraps."""
    if config.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.shard.activation_checkpointing:
        apply_activation_checkpointing(model)
    return model


def maybe_compile(model: nn.Module, config: RunConfig) -> nn.Module:
    """`torch.compile` of the (wrapped) model when asked; the eager model is kept for export."""
    if config.shard.compile:  # compiling a Module gives a Module (an OptimizedModule)
        return cast(nn.Module, torch.compile(model))
    return model
