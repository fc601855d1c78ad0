"""Which canonical tags become classes: the paper's vocabulary knob.

`K` keeps the K most frequent canonical tags by the world's *expected* frequency (not the
counts in one N-image set), so every N of a sweep trains on the same classes and the
nested subsets stay comparable. `matched:<target>` keeps the tags naming that target's
classes, the paper's "hashtags matched to ImageNet synsets". `random:K` keeps K tags drawn
at random from all of them, one fixed draw per data.seed: the control that has the size of
`K` but not its choice of tags, so a report can tell "more tags" from "which tags".
"""

from __future__ import annotations

from typing import Union

import numpy as np

from contract.errors import ConfigError
from data.world import TARGETS, SyntheticWorld

_RANDOM_VOCAB_STREAM = 0x7A6D
"""Seeds the `random:K` draw with the world seed (and K), apart from every other stream."""


def parse_random_vocab(vocab) -> int | None:
    """K of a `random:K` vocabulary, None for any other value (ValueError if K is bad)."""
    if not (isinstance(vocab, str) and vocab.startswith("random:")):
        return None
    text = vocab.split(":", 1)[1]
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"random:{text}")
    return int(text)


def random_vocab(order: np.ndarray, k: int, seed: int, vocab: object, where: str) -> np.ndarray:
    """K of the ranked tags `order`, drawn uniformly without replacement by (seed, K) and
    kept in rank order: the same tags for every N and run of one world."""
    if k > len(order):
        raise ConfigError(f"data.vocab={vocab!r} is invalid: {where} only {len(order)} "
                          f"canonical tags: use random:K with K at most {len(order)}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, _RANDOM_VOCAB_STREAM, k])
    picked = np.zeros(len(order), dtype=bool)
    picked[rng.choice(len(order), size=k, replace=False)] = True
    return order[picked]


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
    k = parse_random_vocab(vocab)
    if k is not None:
        return random_vocab(order, k, world.seed, vocab, "this world has")
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
