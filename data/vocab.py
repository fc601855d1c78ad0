"""Which canonical tags become classes: the paper's vocabulary knob.

`K` keeps the K most frequent canonical tags by the world's *expected* frequency (not the
counts in one N-image set), so every N of a sweep trains on the same classes and the
nested subsets stay comparable. `matched:<target>` keeps the tags naming that target's
classes, the paper's "hashtags matched to ImageNet synsets".
"""

from __future__ import annotations

from typing import Union

import numpy as np

from contract.errors import ConfigError
from data.world import TARGETS, SyntheticWorld


def resolve_vocab(world: SyntheticWorld, vocab: Union[int, str]) -> np.ndarray:
    """Canonical tag ids of the vocabulary, most frequent first (ties by tag id)."""
    freq = world.expected_tag_frequency()
    order = np.lexsort((np.arange(len(freq)), -freq))   # by -freq, then id
    if isinstance(vocab, (int, np.integer)) and not isinstance(vocab, bool):
        if vocab < 1:
            raise ConfigError(f"data.vocab={vocab!r} is invalid: use K >= 1")
        if vocab > len(order):  # clipping would train K=all under another name and hash
            raise ConfigError(f"data.vocab={vocab!r} is invalid: this world has only "
                              f"{len(order)} canonical tags: use at most {len(order)} or 'all'")
        return order[: int(vocab)]
    if vocab == "all":
        return order
    if isinstance(vocab, str) and vocab.startswith("matched:"):
        target = vocab.split(":", 1)[1]
        if target not in TARGETS:
            raise ConfigError(f"data.vocab={vocab!r} is invalid: use matched:<target> with a "
                              f"target in {', '.join(TARGETS)}")
        ids, _ = world.target_classes(target)
        if len(ids) == 0:
            raise ConfigError(f"data.vocab={vocab!r} is invalid: no hashtag names the "
                              f"{target!r} classes (that is what makes them novel)")
        keep = np.isin(order, ids)
        return order[keep]
    raise ConfigError(f"data.vocab={vocab!r} is invalid: use an integer K, 'all' or "
                      "'matched:<target>'")
