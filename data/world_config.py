"""`WorldConfig` under its old name: the world's knobs are part of the run config, so they
live in the torch-free contract layer (contract/world.py)."""

from contract.world import WorldConfig, world_fields

__all__ = ["WorldConfig", "world_fields"]
