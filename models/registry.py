"""`create_model(name, num_classes, **kwargs)`: the one door to every trunk (a timm-style
registry)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn as nn

from contract.errors import ConfigError


class Trunk(Protocol):
    """What every registered model offers besides being an `nn.Module`: the feature width,
    the pooled features transfer probes, and its weights without the hashtag classifier
    (`is_trunk_key` says which state-dict keys are the trunk's: strategies that gather a
    sharded state dict and the trunk loader ask the model, never a hard-coded prefix)."""

    num_features: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def trunk_state_dict(self) -> dict[str, torch.Tensor]: ...

    def is_trunk_key(self, key: str) -> bool: ...

    def freeze_trunk(self) -> nn.Module: ...


_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its function name; builders take ``num_classes`` and knobs."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    """Build a registered model; an unknown name names the closest registered one."""
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=1, cutoff=0.0)
        raise ConfigError(f"model.arch={name!r} is invalid: use a registered model, "
                          f"e.g. {close[0]!r} (see models.list_models())")
    return _MODELS[name](num_classes=num_classes, **kwargs)
