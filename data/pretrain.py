"""Pretraining sets (the first N images of the world, vocabulary-filtered) and target splits.

The N-image set is pretraining indices [0, N) with the images left tagless by the
vocabulary dropped (counted in `dropped`), so the 10x set contains the 1x set. Tags live in
CSR form (`offsets`, `tags`), one row per kept image, as vocabulary ids.

Resampling weights (the paper's natural / square-root / uniform hashtag sampling), with
f_t = the number of kept images carrying vocabulary tag t and T_i the tags of image i:

    natural:  w_i = 1
    sqrt:     w_i = mean_{t in T_i} f_t ** -0.5
    uniform:  w_i = mean_{t in T_i} f_t ** -1

and image i is drawn with probability w_i / sum_j w_j. Under `uniform`, every tag's images
together get the same mass when images carry one tag each; with several tags the mean
splits an image's mass evenly between them.
"""

from __future__ import annotations

import numpy as np
import torch

from contract.config import DataConfig
from contract.errors import ConfigError
from data.rng import uniform
from data.vocab import resolve_vocab
from data.world import SyntheticWorld, _rows_to_csr

_S_LABEL_NOISE = 6
_CHUNK = 1 << 16


_WORLDS: dict[tuple, SyntheticWorld] = {}


def world_for(data_cfg: DataConfig, image_size: int) -> SyntheticWorld:
    """The world a DataConfig-like object names, memoised (it holds a noise bank)."""
    key = (repr(data_cfg.world), int(data_cfg.seed), int(image_size))
    if key not in _WORLDS:
        if len(_WORLDS) >= 4:
            _WORLDS.pop(next(iter(_WORLDS)))
        _WORLDS[key] = SyntheticWorld(data_cfg.world, int(data_cfg.seed), int(image_size))
    return _WORLDS[key]


class PretrainSet:
    """Kept images of one N-image set with their vocabulary tags and an optional uint8 cache.

    Source-agnostic: `fetch(positions)` returns the uint8 (B, 3, S, S) images at set
    positions (the synthetic world renders them, a real source decodes them); `cache` is
    True (fill it from `fetch` now), False, or an already decoded uint8 tensor.
    `indices` are source positions: world indices, or record numbers of a real source in
    its deterministic order. `dropped` counts images left tagless by the vocabulary and
    `corrupt` undecodable records, so len + dropped + corrupt = N.
    """

    def __init__(self, indices: np.ndarray, offsets: np.ndarray, tags: np.ndarray,
                 vocab: np.ndarray, tag_names: list[str], *, image_size: int, fetch,
                 dropped: int, targets: str, cache, resample: str = "natural",
                 corrupt: int = 0, source: str = "synthetic", world=None):
        self.indices = indices                # source position of each kept image
        self.offsets, self.tags = offsets, tags
        self.vocab = vocab                    # canonical tag id of each class
        self.tag_names = list(tag_names)
        self.num_classes = len(vocab)
        self.image_size = int(image_size)
        self.dropped, self.corrupt = int(dropped), int(corrupt)
        self.target_kind = targets
        self.resample = resample
        self.source = source
        self.world = world                    # the SyntheticWorld, or None for real data
        self._fetch = fetch
        self._cache = None
        if isinstance(cache, torch.Tensor):
            self._cache = cache
        elif cache:
            S = self.image_size
            self._cache = torch.empty((len(indices), 3, S, S), dtype=torch.uint8)
            for s in range(0, len(indices), 1024):
                pos = np.arange(s, min(s + 1024, len(indices)))
                self._cache[s:s + len(pos)] = torch.from_numpy(fetch(pos))

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def cached(self) -> bool:
        return self._cache is not None

    def images(self, positions: torch.Tensor) -> torch.Tensor:
        positions = torch.as_tensor(positions, dtype=torch.long)
        if self._cache is not None:
            return self._cache.index_select(0, positions)
        return torch.from_numpy(self._fetch(positions.numpy()))

    def tags_of(self, position: int) -> np.ndarray:
        return self.tags[self.offsets[position]:self.offsets[position + 1]]

    def targets(self, positions: torch.Tensor) -> torch.Tensor:
        """(B, K) float32: soft = 1/k on each of the image's k tags; multihot = 1."""
        pos = torch.as_tensor(positions, dtype=torch.long).numpy()
        start, stop = self.offsets[pos], self.offsets[pos + 1]
        counts = stop - start
        rows = np.repeat(np.arange(len(pos)), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        flat = self.tags[np.repeat(start, counts) + np.arange(len(rows)) - first]
        value = 1.0 / np.repeat(counts, counts) if self.target_kind == "soft" else 1.0
        out = np.zeros((len(pos), self.num_classes), dtype=np.float32)
        out[rows, flat] = value
        return torch.from_numpy(out)

    def tag_frequency(self) -> np.ndarray:
        """f_t: kept images carrying each vocabulary tag (tags are unique within an image)."""
        return np.bincount(self.tags, minlength=self.num_classes)

    def sample_weights(self, resample: str | None = None) -> torch.Tensor:
        """Per-image weight w_i (module docstring); `resample` defaults to data.resample."""
        resample = resample or self.resample
        if resample == "natural":
            return torch.ones(len(self), dtype=torch.float64)
        power = {"sqrt": -0.5, "uniform": -1.0}.get(resample)
        if power is None:
            raise ConfigError(f"resample={resample!r} is invalid: use natural, sqrt or uniform")
        per_tag = self.tag_frequency().astype(np.float64)
        per_tag[per_tag > 0] **= power
        counts = np.diff(self.offsets)
        sums = np.add.reduceat(per_tag[self.tags], self.offsets[:-1]) if len(self) else \
            np.zeros(0)
        return torch.from_numpy(sums / counts)


def _apply_label_noise(seed: int, idx: np.ndarray, offsets: np.ndarray, tags: np.ndarray,
                       p: float, K: int, noise_from: str) -> tuple[np.ndarray, np.ndarray]:
    """Replace each tag with prob p, then merge repeats; keyed by (seed, index, slot), so
    nesting survives noise (under `marginal`, up to the rare draws that a bigger set's
    slightly different tag frequencies move across a boundary). `data.label_noise_from`:
    `marginal` draws the replacement by the set's own clean tag counts (the same for every
    source holding these tags, a materialized copy of the world included) without the
    replaced tag, as the paper injected its noise; `uniform` draws any of the K tags (maybe
    the same one)."""
    counts = np.diff(offsets)
    width = int(counts.max()) if len(counts) else 0
    u = uniform(seed, idx, _S_LABEL_NOISE, 2 * width)
    slot = np.arange(len(tags)) - np.repeat(offsets[:-1], counts)
    row = np.repeat(np.arange(len(idx)), counts)
    flip = u[row, slot] < p
    draw = u[row, width + slot]
    if noise_from == "uniform":
        new = np.minimum((draw * K).astype(np.int64), K - 1)
    else:
        new = _draw_other(draw, tags, np.bincount(tags, minlength=K))
    noisy = np.where(flip, new, tags)
    dense = np.full((len(idx), max(width, 1)), -1, dtype=np.int64)
    dense[row, slot] = noisy
    return _rows_to_csr(dense)


def _draw_other(u: np.ndarray, old: np.ndarray, marginal: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws from `marginal` with each `old` tag's mass cut out: u in [0, 1)
    is scaled onto the remaining mass and stepped over the gap the old tag leaves."""
    if not len(old):  # no tags: nothing to draw (and no mass to normalise)
        return old.copy()
    m = np.asarray(marginal, dtype=np.float64)
    m = m / m.sum()
    cdf = np.cumsum(m)
    own = m[old]
    x = u * (1.0 - own)
    x = x + np.where(x >= cdf[old] - own, own, 0.0)
    return np.minimum(np.searchsorted(cdf, x, side="right"), len(m) - 1)


def vocab_filter(idx: np.ndarray, offsets: np.ndarray, tags: np.ndarray, lut: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the tags the vocabulary knows (`lut`: canonical id -> class, -1 = not a class)
    and the images left with one: (kept idx, counts per kept image, class ids)."""
    v = lut[tags]
    row = np.repeat(np.arange(len(idx)), np.diff(offsets))
    keep_tag = v >= 0
    counts = np.bincount(row[keep_tag], minlength=len(idx))
    keep_img = counts > 0
    return idx[keep_img], counts[keep_img], v[keep_tag]    # rows of dropped images are empty


def finish_tags(seed: int, indices: np.ndarray, counts: list[np.ndarray],
                tags: list[np.ndarray], label_noise: float, K: int,
                noise_from: str) -> tuple[np.ndarray, np.ndarray]:
    """CSR (offsets, tags) of the kept images from per-chunk counts and tags, label noise
    applied (keyed by source index; replacements drawn as `noise_from` says)."""
    offsets = np.zeros(len(indices) + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.concatenate(counts), out=offsets[1:])
    flat = np.concatenate(tags).astype(np.int64) if tags else np.zeros(0, np.int64)
    if label_noise > 0 and len(indices):
        offsets, flat = _apply_label_noise(seed, indices, offsets, flat, float(label_noise), K,
                                           noise_from)
    return offsets, flat


def build_pretrain_set(data_cfg: DataConfig, image_size: int) -> PretrainSet:
    """The N-image set a run's `data` section names."""
    if data_cfg.supervised:
        return build_supervised_set(data_cfg, image_size)
    if data_cfg.source != "synthetic":
        from data.sources import build_real_pretrain_set

        return build_real_pretrain_set(data_cfg, image_size)
    world = world_for(data_cfg, image_size)
    vocab = resolve_vocab(world, data_cfg.vocab)
    lut = np.full(world.num_tags, -1, dtype=np.int64)
    lut[vocab] = np.arange(len(vocab))
    kept_idx: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    tags: list[np.ndarray] = []
    for start in range(0, int(data_cfg.images), _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, int(data_cfg.images)), dtype=np.int64)
        k, c, t = vocab_filter(idx, *world.pretrain_tags_csr(idx), lut)
        kept_idx.append(k)
        counts.append(c)
        tags.append(t)
    indices = np.concatenate(kept_idx)
    offsets, flat = finish_tags(world.seed, indices, counts, tags, data_cfg.label_noise,
                                len(vocab), data_cfg.label_noise_from)
    return PretrainSet(indices, offsets, flat, vocab, [world.tag_names[t] for t in vocab],
                       image_size=world.image_size,
                       fetch=lambda pos: world.render_pretrain(indices[pos]),
                       dropped=int(data_cfg.images) - len(indices), targets=data_cfg.targets,
                       cache=bool(data_cfg.cache), resample=data_cfg.resample, world=world)


def build_target_split(data_cfg: DataConfig, image_size: int, target: str, split: str, n: int):
    """(uint8 images (n,3,H,W), int64 labels (n,), class names) of a clean target split.

    Target splits are the synthetic world's. A real source has them only when it was
    materialized from the world data.seed / data.world name; otherwise a clear error."""
    if data_cfg.source != "synthetic":
        from data.sources import check_materialized_world

        check_materialized_world(data_cfg)
    images, labels, names = world_for(data_cfg, image_size).target_split(target, split, int(n))
    return torch.from_numpy(images), torch.from_numpy(labels), names


def build_supervised_set(data_cfg: DataConfig, image_size: int) -> PretrainSet:
    """The supervised baseline's pretraining set: the first data.images images of the
    `data.supervised` target's train split with their clean labels (one tag each, the
    classes as vocabulary); label noise applies as to hashtags. data.vocab and
    data.resample's tag statistics are those of the clean classes."""
    from data.targets import load_target_split

    split = load_target_split(data_cfg, image_size, data_cfg.supervised, "train",
                              int(data_cfg.images))
    n, K = len(split.labels), len(split.classes)
    indices = np.arange(n, dtype=np.int64)
    counts = [np.ones(n, dtype=np.int64)]
    offsets, tags = finish_tags(int(data_cfg.seed), indices, counts,
                                [split.labels.numpy().astype(np.int64)],
                                data_cfg.label_noise, K, data_cfg.label_noise_from)
    return PretrainSet(indices, offsets, tags, np.arange(K), split.classes,
                       image_size=image_size, fetch=None,
                       dropped=int(data_cfg.images) - n, targets=data_cfg.targets,
                       cache=split.images, resample=data_cfg.resample, corrupt=split.bad,
                       source=f"supervised:{data_cfg.supervised}")
