"""Weakly labelled datasets: the synthetic world, real formats (HF datasets, WebDataset),
vocabularies, subsets, resampling, de-duplication, loaders.

Imports are lazy (PEP 562) so that `import data` never pulls in torch; the world's knobs
(`WorldConfig`) are the torch-free contract layer's (contract/world_config.py). No export shares a
submodule's name: importing the submodule would replace the export with the module
(`materialize` is therefore imported from `data.materialize`).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "WorldConfig": "contract.world_config",
    "SyntheticWorld": "data.world",
    "TARGETS": "data.world",
    "PretrainSet": "data.pretrain",
    "build_pretrain_set": "data.pretrain",
    "build_target_split": "data.pretrain",
    "resolve_vocab": "data.vocab",
    "ResumableLoader": "data.loader",
    "find_duplicates": "data.dedup",
    "write_duplicates": "data.dedup",
    "dedup_path": "data.dedup",
    "read_duplicates": "data.dedup",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'data' has no attribute {name!r}")


def __dir__():
    return __all__
