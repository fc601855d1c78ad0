"""Sharding strategies behind one protocol (`Strategy`); each engine in its own module, and
deepspeed / fairscale imported only there (a strategy module is imported when chosen).
Which strategies exist, and what each accepts and holds, is the table in `table.py`."""

from __future__ import annotations

import importlib

from contract.errors import ConfigError
from contract.strategies import TABLE


def get_strategy(name: str):
    if name not in TABLE:
        raise ConfigError(f"shard.strategy={name!r} is not available: use one of "
                          f"{', '.join(sorted(TABLE))} (`auto` is resolved by the sweep "
                          "or at train start)")
    spec = TABLE[name]
    return getattr(importlib.import_module(spec.module), spec.cls)


def __getattr__(name):
    if name == "Strategy":
        from scaling.strategies.base import Strategy

        return Strategy
    raise AttributeError(name)


__all__ = ["Strategy", "get_strategy"]
