"""Counter-based random numbers: a pure function of (seed, index, stream, slot).

Why not `np.random.Generator` per image: seeding one generator per image costs more than
rendering it (measured in the prototype), and a generator drawn per batch makes an image
depend on the batch it was drawn in. A stateless hash gives every image its own numbers in
bulk, identical in any batching and in any process.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

_U64 = TypeVar("_U64", np.ndarray, np.uint64)  # one key (a scalar) or many (an array)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_K_SEED = np.uint64(0xD1B54A32D192ED03)
_K_STREAM = np.uint64(0x8CB92BA72F3D8DD7)


def _mix(x: _U64) -> _U64:
    """The splitmix64 finaliser: a bijection of uint64 with full avalanche."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def hash64(seed: int, index: np.ndarray, stream: int, slots: int) -> np.ndarray:
    """uint64 hashes, shape (len(index), slots): slot j of image i in the named stream."""
    with np.errstate(over="ignore"):
        key = _mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * _K_SEED
                   + np.uint64(stream & 0xFFFFFFFF) * _K_STREAM)
        base = _mix(np.asarray(index, dtype=np.uint64) * _GOLDEN ^ key)
        ctr = np.arange(1, slots + 1, dtype=np.uint64) * _GOLDEN
        return _mix(base[:, None] + ctr[None, :])


def uniform(seed: int, index: np.ndarray, stream: int, slots: int) -> np.ndarray:
    """float64 uniforms in [0, 1), shape (len(index), slots), from 53 hash bits."""
    h = hash64(seed, index, stream, slots)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
