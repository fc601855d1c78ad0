"""What a pretraining set of N images tells about the fine concepts (no training needed).

The reason more distinct images carry more information in the synthetic world: a concept
the set never tags correctly cannot be learned from it. `coverage` counts, for the first N
pretraining images, the fine concepts shown at all and those with at least k correctly
tagged images (the image shows the concept and its fine tag was emitted), split into the
head and tail halves of the `fine` target's classes by popularity. Torch-free.
"""

from __future__ import annotations

import numpy as np


def tagged_counts(world, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(objects of each fine concept, images correctly tagged with it) among images [0, n)."""
    idx = np.arange(n, dtype=np.int64)
    objs = world.pretrain_objects(idx)
    offsets, tags = world.pretrain_tags_csr(idx)
    F = world.config.num_fine
    shown = np.bincount(objs[objs >= 0], minlength=F)          # object occurrences
    rows = np.repeat(np.arange(n), np.diff(offsets))
    correct = (tags < F) & (objs[rows] == tags[:, None]).any(1)
    return shown, np.bincount(tags[correct], minlength=F)


def coverage(world, n: int, min_tagged: tuple[int, ...] = (1, 5, 20)) -> dict:
    """Counts for the first n pretraining images of `world` (see module docstring)."""
    shown, tagged = tagged_counts(world, n)
    targets = world.fine_target_concepts
    order = np.argsort(-world.popularity[targets], kind="stable")
    head, tail = targets[order[: len(order) // 2]], targets[order[len(order) // 2:]]
    out: dict[str, int | float] = {"N": n, "concepts_shown": int((shown > 0).sum()),
                                   "concepts": len(shown)}
    for k in min_tagged:
        out[f"tagged>={k}"] = int((tagged >= k).sum())
        out[f"head_tagged>={k}"] = float((tagged[head] >= k).mean())
        out[f"tail_tagged>={k}"] = float((tagged[tail] >= k).mean())
    out["tail_median_tagged"] = float(np.median(tagged[tail]))
    return out
