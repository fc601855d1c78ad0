"""What a run's resampling shows the model: exact expectations, no simulation.

Pretraining draws S = total steps x global batch set positions (data/loader.py). Under
`natural` each epoch is a permutation of the L kept images; under `sqrt` / `uniform` every
draw is independent, image i with probability p_i = w_i / sum_j w_j (data/pretrain.py
`sample_weights`). `expected_sampling` gives, for that stream:

    distinct       E[images drawn at least once]
                   natural: min(S, L);  weighted: sum_i 1 - (1 - p_i)^S
    repeats        S / distinct: draws per distinct image shown (a ratio of expectations)
    tail_share     E[share of draws that go to tail images]
                   natural: n_tail / L;  weighted: sum_{i in tail} p_i
    tail_distinct  E[tail images drawn at least once]
                   natural: n_tail if S >= L else S * n_tail / L;  weighted: the sum above
                   over the tail
    tail_repeats   S * tail_share / tail_distinct: draws per distinct tail image shown

The tail (`tail_images`) is defined from the set's own tags, not from the generator: of
the vocabulary tags that some kept image carries, sort by f_t (kept images carrying tag
t), rarest first, ties by tag id; the tail tags are the rarer half (floor(n/2) of the n
tags), and a tail image is one that carries at least one tail tag. Why this definition:
- it is what the sampler sees: an image's weight is the mean of its tags' f_t^-p, so one
  rare tag lifts it whatever else it carries ("all tags rare" would drop every rare fine
  concept's image that also carries its frequent coarse tag);
- half of the tags, not half of the tag mass: the 16 coarse tags and a few popular
  non-visual ones hold half of all occurrences, so a mass tail would take 454 of 464
  tags and 71% of the images (world 43, 192k images), no tail at all;
- it exists for every source (the world, a materialized or real source, a supervised
  set), while the generator's `tail_private` concepts exist only in the synthetic world;
  on the default world (seed 43, 192k images, vocabulary `all`) this tail holds all 192
  private-concept tags among its 232, and 11,967 of the 181,621 kept images;
- it follows the vocabulary: a coarse-only vocabulary has its own (coarse) tail.
Numpy only, so the backfill and tests need neither torch nor a world.
"""

from __future__ import annotations

import numpy as np

TAIL_DEFINITION = ("images carrying at least one tag of the rarer half of the vocabulary "
                   "tags present in the set (by images per tag)")


def tail_tags(tag_frequency: np.ndarray) -> np.ndarray:
    """Boolean mask over tags: the rarer half (floor(n/2)) of the n tags with f_t > 0,
    sorted by f_t ascending, ties by tag id."""
    f = np.asarray(tag_frequency, dtype=np.int64)
    out = np.zeros(len(f), dtype=bool)
    order = np.argsort(f, kind="stable")
    order = order[f[order] > 0]
    out[order[:len(order) // 2]] = True
    return out


def tail_images(offsets: np.ndarray, tags: np.ndarray, num_tags: int) -> np.ndarray:
    """Boolean mask over the set's images (CSR `offsets`, `tags`): carries a tail tag."""
    offsets = np.asarray(offsets, dtype=np.int64)
    tags = np.asarray(tags, dtype=np.int64)
    rare = tail_tags(np.bincount(tags, minlength=num_tags))
    counts = np.diff(offsets)
    row = np.repeat(np.arange(len(counts)), counts)
    return np.bincount(row[rare[tags]], minlength=len(counts)) > 0


def _shown(p: np.ndarray, draws: int) -> np.ndarray:
    """1 - (1 - p)^S per image, accurate for tiny p (log1p / expm1)."""
    with np.errstate(divide="ignore"):
        return -np.expm1(draws * np.log1p(-p))


def expected_sampling(weights: np.ndarray, draws: int, tail: np.ndarray,
                      resample: str) -> dict:
    """The module docstring's figures for a stream of `draws` positions over a set whose
    per-image weights are `weights` (ignored under `natural`, a permutation per epoch)
    and whose tail images `tail` marks. Plain floats and ints, JSON-ready."""
    w = np.asarray(weights, dtype=np.float64)
    tail = np.asarray(tail, dtype=bool)
    L, S = len(w), int(draws)
    if L == 0 or len(tail) != L or S < 0:
        raise ValueError(f"expected_sampling: {L} weights, {len(tail)} tail flags and "
                         f"{S} draws: use one flag per weight, a non-empty set, draws >= 0")
    n_tail = int(tail.sum())
    if resample == "natural":
        distinct = float(min(S, L))
        tail_share = n_tail / L
        tail_distinct = float(n_tail) if S >= L else S * n_tail / L
    else:
        if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
            raise ValueError("expected_sampling: weights must be finite, >= 0, not all 0")
        p = w / w.sum()
        shown = _shown(p, S)
        distinct = float(shown.sum())
        tail_share = float(p[tail].sum())
        tail_distinct = float(shown[tail].sum())
    tail_draws = S * tail_share
    return {"resample": resample, "images": L, "draws": S,
            "distinct": distinct, "distinct_share": distinct / L,
            "repeats": S / distinct if distinct else float("nan"),
            "tail_images": n_tail, "tail_image_share": n_tail / L,
            "tail_share": float(tail_share), "tail_draws": float(tail_draws),
            "tail_distinct": tail_distinct,
            "tail_repeats": tail_draws / tail_distinct if tail_distinct else float("nan"),
            "tail_definition": TAIL_DEFINITION}


def sampling_stats(pset, draws: int, resample: str | None = None) -> dict:
    """`expected_sampling` for a PretrainSet (its weights, its tags' tail) and `draws`
    stream positions; `resample` defaults to the set's own."""
    resample = resample or pset.resample
    weights = np.ones(len(pset)) if resample == "natural" else \
        np.asarray(pset.sample_weights(resample), dtype=np.float64)
    tail = tail_images(pset.offsets, pset.tags, pset.num_classes)
    out = expected_sampling(weights, draws, tail, resample)
    out["tail_tags"] = int(tail_tags(pset.tag_frequency()).sum())
    out["tags"] = int(pset.num_classes)
    return out
