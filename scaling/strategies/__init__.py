"""Sharding strategies behind one protocol (`Strategy`); each engine in its own module, and
deepspeed / fairscale imported only there."""

from __future__ import annotations

import importlib

from scaling.strategies.base import Strategy

_STRATEGIES = {
    "ddp": ("scaling.strategies.ddp", "DDPStrategy"),
}


def get_strategy(name: str) -> type[Strategy]:
    if name not in _STRATEGIES:
        raise ValueError(f"shard.strategy={name!r} is not available in this version: "
                         f"use one of {', '.join(sorted(_STRATEGIES))}")
    module, cls = _STRATEGIES[name]
    return getattr(importlib.import_module(module), cls)


__all__ = ["Strategy", "get_strategy"]
