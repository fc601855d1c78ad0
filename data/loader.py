"""A resumable, world-size-independent sample stream over a PretrainSet.

The stream is global: position p of the stream lies in epoch e = p // L (L = len(set)) and
takes entry p % L of that epoch's order. `natural` orders an epoch by a permutation;
`sqrt` / `uniform` draw L positions with replacement by `sample_weights`. Each epoch's
order comes from a torch.Generator seeded by a hash of (seed, epoch), so it depends on
nothing else. Step s consumes stream positions [s*G, (s+1)*G) and rank r of W takes the
slice [r*G/W, (r+1)*G/W). The state is therefore only the step: resuming at another world
size replays the same global stream, sliced differently.
"""

from __future__ import annotations

import numpy as np
import torch

from contract import versions
from contract.errors import ConfigError
from data.rng import hash64

_S_EPOCH = 7
SCHEMA_VERSION = versions.LOADER_STATE  # contract/versions.py


class ResumableLoader:
    """Batches for one rank; `state_dict` / `load_state_dict` resume the exact stream."""

    def __init__(self, pset, global_batch: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, resample: str = "natural"):
        if global_batch < 1 or world_size < 1 or global_batch % world_size:
            raise ConfigError(f"global_batch={global_batch!r} is invalid: use a positive "
                              f"multiple of the world size ({world_size})")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank={rank!r} is invalid: use 0..{world_size - 1}")
        if len(pset) == 0:
            raise ConfigError("the pretraining set is empty: no image kept a vocabulary tag")
        self.pset, self.global_batch = pset, int(global_batch)
        self.rank, self.world_size = int(rank), int(world_size)
        self.seed, self.resample = int(seed), resample
        self.step = 0
        self._weights = pset.sample_weights(resample) if resample != "natural" else None
        self._epochs: dict[int, torch.Tensor] = {}

    # ----- the global stream -------------------------------------------------------------
    def epoch_order(self, epoch: int) -> torch.Tensor:
        """Set positions in stream order for one epoch (int64, length len(pset))."""
        order = self._epochs.get(epoch)
        if order is None:
            key = int(hash64(self.seed, np.array([epoch]), _S_EPOCH, 1)[0, 0] >> np.uint64(1))
            g = torch.Generator().manual_seed(key)
            L = len(self.pset)
            if self._weights is None:
                order = torch.randperm(L, generator=g)
            else:
                order = torch.multinomial(self._weights, L, replacement=True, generator=g)
            if len(self._epochs) >= 4:
                self._epochs.pop(min(self._epochs))
            self._epochs[epoch] = order
        return order

    def global_positions(self, step: int) -> torch.Tensor:
        """All G set positions of one step, in stream order."""
        L = len(self.pset)
        p = torch.arange(step * self.global_batch, (step + 1) * self.global_batch)
        epochs, offsets = p // L, p % L
        out = torch.empty_like(p)
        for e in torch.unique(epochs).tolist():
            m = epochs == e
            out[m] = self.epoch_order(e)[offsets[m]]
        return out

    def rank_positions(self, step: int) -> torch.Tensor:
        per = self.global_batch // self.world_size
        return self.global_positions(step)[self.rank * per:(self.rank + 1) * per]

    # ----- batches and state -------------------------------------------------------------
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        pos = self.rank_positions(self.step)
        self.step += 1
        return self.pset.images(pos), self.pset.targets(pos)

    def state_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "step": self.step, "seed": self.seed,
                "global_batch": self.global_batch, "resample": self.resample,
                "num_samples": len(self.pset), "images_seen": self.step * self.global_batch}

    def load_state_dict(self, state: dict) -> None:
        """Resume at `state["step"]`; the stream must be the same one (seed, batch, set)."""
        mine = self.state_dict()
        for key in ("seed", "global_batch", "resample", "num_samples"):
            if key in state and state[key] != mine[key]:
                raise ConfigError(f"loader state {key}={state[key]!r} does not match this run's "
                                  f"{mine[key]!r}: resuming would change the sample stream")
        self.step = int(state["step"])
