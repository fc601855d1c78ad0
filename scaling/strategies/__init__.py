"""Sharding strategies behind one protocol (`Strategy`); each engine in its own module, and
deepspeed / fairscale imported only there (a strategy module is imported when chosen)."""

from __future__ import annotations

import importlib

_STRATEGIES = {
    "ddp": ("scaling.strategies.ddp", "DDPStrategy"),
    "fsdp2": ("scaling.strategies.fsdp2", "FSDP2Strategy"),
    "fsdp1": ("scaling.strategies.fsdp1", "FSDP1Strategy"),
    "deepspeed": ("scaling.strategies.deepspeed_zero", "DeepSpeedStrategy"),
    "fairscale": ("scaling.strategies.fairscale_oss", "FairscaleStrategy"),
}


def get_strategy(name: str):
    if name not in _STRATEGIES:
        raise ValueError(f"shard.strategy={name!r} is not available: use one of "
                         f"{', '.join(sorted(_STRATEGIES))} (`auto` is resolved by the sweep "
                         "or at train start)")
    module, cls = _STRATEGIES[name]
    return getattr(importlib.import_module(module), cls)


def __getattr__(name):
    if name == "Strategy":
        from scaling.strategies.base import Strategy

        return Strategy
    raise AttributeError(name)


__all__ = ["Strategy", "get_strategy"]
