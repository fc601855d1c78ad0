"""The synthetic weakly labelled world: concepts, their popularity, tags and images.

A fine concept is (shape family, variant, texture, colour); its coarse concept is the shape
family. Pretraining images show 1..max_objects concepts drawn by Zipfian popularity and
carry Instagram-like tags: an object's fine and coarse tags are each emitted or missing,
an image may carry a tag of a concept it does not show and a non-visual tag, and raw
spellings (synonyms) are merged into canonical tags before anyone sees them.

Every image is a pure function of (seed, index): its random numbers come from a counter
hash (`data.rng`), so any batching, order or process gives the same pixels and tags.
Index ranges keep the streams apart: pretraining uses [0, 2**40); target t, split s uses
[(1 + 2t + s) * 2**40, ...), so no target image is ever a pretraining image.
"""

from __future__ import annotations

import numpy as np

from contract.errors import ConfigError
from contract.world_config import WorldConfig
from data import render as _render
from data.rng import uniform

TARGETS = ("fine", "coarse", "novel")
SPLITS = ("train", "test")
PRETRAIN_LIMIT = 1 << 40

_S_OBJECTS, _S_TAGS, _S_RENDER, _S_TARGET = 1, 2, 3, 4
_S_NOISE_BANK = 5

_COLOUR_NAMES = ["red", "orange", "yellow", "lime", "green", "teal", "cyan", "azure",
                 "blue", "violet", "purple", "pink"]
_TEXTURE_NAMES = ["plain", "striped", "checked", "ringed"]
_NONVISUAL = ["love", "tbt", "instagood", "photooftheday", "happy", "fun", "friends",
              "weekend", "mood", "vibes", "nofilter", "blessed", "goals", "follow", "art",
              "style"]


def _colour_name(c: int, colours: int) -> str:
    if colours <= len(_COLOUR_NAMES):
        return _COLOUR_NAMES[int(round(c * len(_COLOUR_NAMES) / colours)) % len(_COLOUR_NAMES)]
    return f"hue{c}"


def _texture_name(t: int) -> str:
    return _TEXTURE_NAMES[t % 4] + ("" if t < 4 else str(1 + t // 4))


def _family_name(f: int) -> str:
    lobes, amp, aspect = (v.item() for v in _render.family_shape(np.array([f])))
    kind = "spiky" if amp > 0.3 else "round"
    return f"{kind}{int(lobes)}{'long' if aspect > 1 else ''}{'x' if f >= 32 else ''}"


class SyntheticWorld:
    """One world per (config, seed); `image_size` only changes how it is rendered."""

    def __init__(self, config: WorldConfig, seed: int, image_size: int):
        self.config, self.seed, self.image_size = config, int(seed), int(image_size)
        c = config
        setup = np.random.default_rng([self.seed, 0x5EED])
        combos = c.variants * c.textures * c.colours
        # Each family takes fine_per_coarse attribute combinations; the rest stay untagged
        # and feed the novel target.
        fine, novel = [], []
        for fam in range(c.num_coarse):
            order = setup.permutation(combos)
            fine += [(fam, int(k)) for k in order[:c.fine_per_coarse]]
            novel += [(fam, int(k)) for k in order[c.fine_per_coarse:]]
        self.fine_attrs = self._attrs(fine)           # (F, 4): family, variant, texture, colour
        pick = setup.choice(len(novel), size=c.novel_classes, replace=False)
        self.novel_attrs = self._attrs([novel[i] for i in np.sort(pick)])

        F = c.num_fine
        ranks = setup.permutation(F)                  # popularity rank of each fine concept
        w = (1.0 + ranks) ** -c.zipf_exponent
        self.popularity = w / w.sum()                 # p(concept) per object
        # The least popular tail_private share: hue index k -> a point of a narrow band
        # (k * band / colours degrees), with the jitter narrowed alike.
        self.private = ranks >= F - int(round(c.tail_private * F))
        fine_step = c.tail_hue_band / 360.0          # band step, in common colour steps
        col = self.fine_attrs[:, 3].astype(np.float64)
        self.fine_hue = np.where(self.private, col * fine_step, col)
        self.fine_spread = np.where(self.private, fine_step, 1.0)
        self._cdf = np.cumsum(self.popularity)
        nv = (1.0 + np.arange(c.num_nonvisual)) ** -1.0
        self._nv_cdf = np.cumsum(nv / nv.sum()) if c.num_nonvisual else np.ones(0)

        self.tag_names = self._tag_names()
        self.synonyms = self._synonyms()
        self.fine_target_concepts = self._fine_target_concepts()
        self._noise_bank = self._make_noise_bank()

    # ----- concepts and tags -------------------------------------------------------------
    def _attrs(self, pairs: list[tuple[int, int]]) -> np.ndarray:
        c = self.config
        fam = np.array([p[0] for p in pairs], dtype=np.int64)
        k = np.array([p[1] for p in pairs], dtype=np.int64)
        var, rest = k % c.variants, k // c.variants
        return np.stack([fam, var, rest % c.textures, rest // c.textures], axis=1)

    def concept_name(self, attrs: np.ndarray, half_hue: bool = False) -> str:
        fam, var, tex, col = (int(a) for a in attrs)
        hollow = "" if var == 0 else ("hollow" if self.config.variants == 2 else f"hollow{var}")
        colour = _colour_name(col, self.config.colours)
        if half_hue:  # a private hue of the tail band: "band3"
            colour = f"band{col}"
        return f"{colour}_{_texture_name(tex)}_{hollow}{_family_name(fam)}"

    def _tag_names(self) -> list[str]:
        c = self.config
        names = [self.concept_name(a, bool(p)) for a, p in zip(self.fine_attrs, self.private)]
        names += [_family_name(f) for f in range(c.num_coarse)]
        k = len(_NONVISUAL)
        names += [_NONVISUAL[i % k] + ("" if i < k else str(i // k))
                  for i in range(c.num_nonvisual)]
        assert len(set(names)) == len(names), "tag names must be unique"
        return names

    def _synonyms(self) -> dict[str, str]:
        """Raw hashtag spellings -> canonical tag (the canonical spelling maps to itself)."""
        out = {}
        for name in self.tag_names:
            out[name] = name
            bare = name.replace("_", "")
            forms = [bare, name + "s", bare + "s", "my" + bare, name + "_pic", bare + "gram",
                     "the" + bare, bare + "daily"]
            forms = [f for f in dict.fromkeys(forms) if f not in out]
            for form in forms[: self.config.synonyms - 1]:
                out[form] = name
        return out

    @property
    def _fine_hues(self) -> tuple[np.ndarray, np.ndarray]:
        return self.fine_hue, self.fine_spread

    @property
    def num_tags(self) -> int:
        return len(self.tag_names)

    def tag_kind(self) -> np.ndarray:
        """Per canonical tag: 0 = fine, 1 = coarse, 2 = non-visual."""
        c = self.config
        return np.repeat([0, 1, 2], [c.num_fine, c.num_coarse, c.num_nonvisual])

    def expected_tag_frequency(self) -> np.ndarray:
        """Expected occurrences of each canonical tag per pretraining image (before a repeated
        tag in one image is merged); the deterministic order behind `vocab: K`."""
        c = self.config
        objects = (1 + c.max_objects) / 2.0
        fine = self.popularity * (objects * c.p_fine_tag + c.p_absent_tag)
        coarse = np.bincount(self.fine_attrs[:, 0], weights=self.popularity,
                             minlength=c.num_coarse) * objects * c.p_coarse_tag
        nv = np.diff(np.concatenate([[0.0], self._nv_cdf])) * c.p_nonvisual_tag
        return np.concatenate([fine, coarse, nv])

    def _fine_target_concepts(self) -> np.ndarray:
        """Fine concepts of the `fine` target: evenly spaced over popularity ranks."""
        F, m = self.config.num_fine, self.config.fine_target_classes or self.config.num_fine
        by_rank = np.argsort(-self.popularity, kind="stable")
        return np.sort(by_rank[np.round(np.linspace(0, F - 1, m)).astype(np.int64)])

    def pretrain_objects(self, indices: np.ndarray) -> np.ndarray:
        """Fine concept of each object slot, (n, max_objects) int64, -1 where empty."""
        idx = self._check_pretrain(indices)
        M = self.config.max_objects
        u = uniform(self.seed, idx, _S_OBJECTS, 1 + M)
        count = 1 + np.minimum((u[:, 0] * M).astype(np.int64), M - 1)
        concepts = np.minimum(np.searchsorted(self._cdf, u[:, 1:], side="right"),
                              self.config.num_fine - 1)
        return np.where(np.arange(M)[None, :] < count[:, None], concepts, -1)

    def pretrain_tags_csr(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical tags of each image as (offsets (n+1,), sorted unique ids per image)."""
        c = self.config
        idx = self._check_pretrain(indices)
        objs = self.pretrain_objects(idx)
        n, M = objs.shape
        u = uniform(self.seed, idx, _S_TAGS, 2 * M + 4)
        present = objs >= 0
        safe = np.maximum(objs, 0)
        fine_tag = np.where(present & (u[:, :M] < c.p_fine_tag), safe, -1)
        coarse_tag = np.where(present & (u[:, M:2 * M] < c.p_coarse_tag),
                              c.num_fine + self.fine_attrs[safe, 0], -1)
        absent = np.minimum(np.searchsorted(self._cdf, u[:, 2 * M + 1], side="right"),
                            c.num_fine - 1)
        absent_tag = np.where(u[:, 2 * M] < c.p_absent_tag, absent, -1)
        if c.num_nonvisual:
            nv = np.minimum(np.searchsorted(self._nv_cdf, u[:, 2 * M + 3], side="right"),
                            c.num_nonvisual - 1)
            nv_tag = np.where(u[:, 2 * M + 2] < c.p_nonvisual_tag,
                              c.num_fine + c.num_coarse + nv, -1)
        else:
            nv_tag = np.full(n, -1)
        cand = np.concatenate([fine_tag, coarse_tag, absent_tag[:, None], nv_tag[:, None]], axis=1)
        return _rows_to_csr(cand)

    def pretrain_tags(self, indices: np.ndarray) -> list[np.ndarray]:
        offsets, flat = self.pretrain_tags_csr(indices)
        return np.split(flat, offsets[1:-1])

    # ----- images ------------------------------------------------------------------------
    def _make_noise_bank(self) -> np.ndarray:
        """Unit-variance pixel noise tiles; each image reads one at a hashed offset (hashing
        every pixel would cost more than drawing the image)."""
        P = 3 * self.image_size ** 2
        tiles = int(np.clip(2 ** 23 // P, 8, 1024))
        rng = np.random.default_rng([self.seed, _S_NOISE_BANK, self.image_size])
        return rng.standard_normal((tiles, P), dtype=np.float32)

    def _noise(self, idx: np.ndarray, u: np.ndarray) -> np.ndarray:
        tiles, P = self._noise_bank.shape
        tile = np.minimum((u[:, 0] * tiles).astype(np.int64), tiles - 1)
        off = (u[:, 1] * P).astype(np.int64)
        cols = (np.arange(P)[None, :] + off[:, None]) % P
        S = self.image_size
        return self._noise_bank[tile[:, None], cols].reshape(len(idx), 3, S, S)

    _BLOCK = 512
    """Images per vectorised render call: big enough to amortise numpy's per-call cost,
    small enough that the (n, H, W) float32 temporaries stay in cache (4x slower at 4096)."""

    def _render(self, idx: np.ndarray, concepts: np.ndarray, attrs: np.ndarray,
                hues: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """`hues`: per concept, (hue in colour steps, jitter scale): attrs' colour and 1
        except for private tail concepts."""
        if len(idx) > self._BLOCK:
            return np.concatenate([self._render(idx[s:s + self._BLOCK], concepts[s:s + self._BLOCK],
                                                attrs, hues)
                                   for s in range(0, len(idx), self._BLOCK)])
        c = self.config
        n, M = concepts.shape
        u = uniform(self.seed, idx, _S_RENDER, _render.BG_SLOTS + M * _render.OBJ_SLOTS + 2)
        a = attrs[np.maximum(concepts, 0)]            # (n, M, 4)
        hue, spread = (h[np.maximum(concepts, 0)] for h in hues)
        nb = _render.BG_SLOTS + M * _render.OBJ_SLOTS
        return _render.render(
            a[..., 0], a[..., 1], a[..., 2], hue, concepts >= 0,
            u[:, :_render.BG_SLOTS], u[:, _render.BG_SLOTS:nb].reshape(n, M, _render.OBJ_SLOTS),
            self._noise(idx, u[:, nb:]),
            size=self.image_size, variants=c.variants, colours=c.colours,
            clutter=c.clutter, noise_std=c.noise_std, object_size=c.object_size,
            hue_spread=spread)

    def render_pretrain(self, indices: np.ndarray) -> np.ndarray:
        idx = self._check_pretrain(indices)
        return self._render(idx, self.pretrain_objects(idx), self.fine_attrs, self._fine_hues)

    # ----- targets -----------------------------------------------------------------------
    def target_classes(self, name: str) -> tuple[np.ndarray, list[str]]:
        """(canonical tag ids naming the classes or empty for novel, class names)."""
        c = self.config
        if name == "fine":
            ids = self.fine_target_concepts
            return ids, [self.tag_names[i] for i in ids]
        if name == "coarse":
            ids = c.num_fine + np.arange(c.num_coarse)
            return ids, [self.tag_names[i] for i in ids]
        if name == "novel":
            return np.zeros(0, np.int64), [self.concept_name(a) for a in self.novel_attrs]
        raise ConfigError(f"target={name!r} is invalid: use one of {', '.join(TARGETS)}")

    def target_indices(self, name: str, split: str, n: int) -> np.ndarray:
        if name not in TARGETS or split not in SPLITS:
            raise ConfigError(f"target split {name!r}/{split!r} is invalid: use a target in "
                              f"{TARGETS} and a split in {SPLITS}")
        start = (1 + 2 * TARGETS.index(name) + SPLITS.index(split)) * PRETRAIN_LIMIT
        return start + np.arange(n, dtype=np.int64)

    def target_split(self, name: str, split: str, n: int
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Clean single-object images with balanced labels (image j has class j mod C)."""
        idx = self.target_indices(name, split, n)
        _, class_names = self.target_classes(name)
        C = len(class_names)
        labels = np.arange(n, dtype=np.int64) % C
        M = self.config.max_objects
        if name == "fine":
            concept, attrs = self.fine_target_concepts[labels], self.fine_attrs
            hues = self._fine_hues
        elif name == "novel":
            concept, attrs = labels, self.novel_attrs
            hues = (self.novel_attrs[:, 3].astype(np.float64), np.ones(len(self.novel_attrs)))
        else:  # coarse: any fine concept of the family, uniformly
            u = uniform(self.seed, idx, _S_TARGET, 1)[:, 0]
            k = np.minimum((u * self.config.fine_per_coarse).astype(np.int64),
                           self.config.fine_per_coarse - 1)
            concept = labels * self.config.fine_per_coarse + k
            attrs, hues = self.fine_attrs, self._fine_hues
        concepts = np.full((n, M), -1, dtype=np.int64)
        concepts[:, 0] = concept
        images = self._render(idx, concepts, attrs, hues) if n else np.zeros(
            (0, 3, self.image_size, self.image_size), np.uint8)  # (empty: no render call)
        return images, labels, class_names

    @staticmethod
    def _check_pretrain(indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= PRETRAIN_LIMIT):
            raise ValueError(f"pretraining indices must lie in [0, 2**40); got "
                             f"[{idx.min()}, {idx.max()}]")
        return idx


def _rows_to_csr(cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row sorted unique non-negative entries of an (n, s) array, as CSR."""
    s = np.sort(cand, axis=1)
    keep = s >= 0
    keep[:, 1:] &= s[:, 1:] != s[:, :-1]
    offsets = np.zeros(len(s) + 1, dtype=np.int64)
    np.cumsum(keep.sum(1), out=offsets[1:])
    return offsets, s[keep].astype(np.int64)
