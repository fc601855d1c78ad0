"""Near-duplicates of target test images in pretraining data (the paper's de-duplication).

The paper removes target test images that also occur in the pretraining crawl and reports
the accuracy left as a lower bound. data/ owns finding them; transfer only reads the result:

    <out_dir>/dedup/<dataset_key>__<target>.json
    {"schema_version": 1, "dataset": {source, path, seed, images, image_size, world_hash},
     "dataset_key": ..., "target": ..., "split": "test", "n_test": ...,
     "method": "dct12-rgb-cropviews", "threshold": min cosine similarity,
     "duplicates": [sorted target test indices with a near-duplicate in the pretraining set],
     "pairs": [[test index, pretraining set position, source index, cosine similarity], ...]}

`dedup_path(data_cfg, image_size, target, out_dir)` names the file; transfer drops the listed
test indices to report the lower-bound accuracy.

The descriptor is the low-frequency 2D DCT of each colour channel: the image is area-
averaged to 32 x 32, and the 12 x 12 lowest coefficients minus the DC term are kept,
L2-normalised per channel (so brightness and contrast changes cancel), then as a whole:
429 numbers compared by cosine similarity. Low frequencies survive re-encoding, resizing
and moderate colour jitter. Crops do not: they shift and scale everything. So each target
image is also described by crop views (5 scales from 100% to 80% of its side x a 5 x 5
grid of positions, each area-averaged to 32 x 32 by exact fractional overlaps), and a
pretraining image matches a target when it is close to any view. A perceptual hash (bits
and Hamming distance) was tried first and separates nothing on this world: its images
share backgrounds and shapes, so unrelated pairs sit as close as planted duplicates
(tests/data/test_dedup.py records the numbers).

Cost: n_test x views x N dot products of length 429, batched as matrix products.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from contract import versions
from contract.config import DataConfig
from contract.errors import ConfigError
from contract.world_config import world_fields

SCHEMA_VERSION = versions.DEDUP  # contract/versions.py
METHOD = "dct12-rgb-cropviews"
FEATURE_SIDE = 32
BLOCK = 12
CROP_SCALES = (1.0, 0.95, 0.9, 0.85, 0.8)
CROP_STEPS = 5
DEFAULT_THRESHOLD = 0.88
"""Cosine similarity at or above which a pretraining image is a near-duplicate of a
target image; chosen on planted duplicates (tests/data/test_dedup.py)."""


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n, dtype=np.float64)[:, None]
    x = np.arange(n, dtype=np.float64)[None, :]
    d = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * (2.0 / n) ** 0.5
    d[0] /= 2 ** 0.5
    return d


_DCT = _dct_matrix(FEATURE_SIDE)[:BLOCK]


def _projection(side: int, start: float, width: float) -> np.ndarray:
    """(BLOCK, side): area-average the window [start, start + width) of a `side`-pixel axis
    into FEATURE_SIDE bins (exact fractional overlaps), then take the low DCT rows. Resize
    and DCT are both linear and separable, so a crop view is two small matrix products and
    no resized copy of any image is ever made."""
    edges = start + width * np.arange(FEATURE_SIDE + 1) / FEATURE_SIDE
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(side)[None, :]
    area = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None) / (hi - lo)
    return _DCT @ area


def _views(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column projections (V, BLOCK, side) of every crop view of a square image."""
    rows, cols = [], []
    for scale in CROP_SCALES:
        w = side * scale
        for oy in np.linspace(0, side - w, CROP_STEPS if scale < 1 else 1):
            for ox in np.linspace(0, side - w, CROP_STEPS if scale < 1 else 1):
                rows.append(_projection(side, oy, w))
                cols.append(_projection(side, ox, w))
    return torch.from_numpy(np.stack(rows)).float(), torch.from_numpy(np.stack(cols)).float()


def _normalise(coef: torch.Tensor) -> torch.Tensor:
    """(..., 3, BLOCK, BLOCK) coefficients -> unit descriptors without the DC terms."""
    low = coef.flatten(-2)[..., 1:]
    low = low / low.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    return low.flatten(-2) / 3 ** 0.5


def features(images: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """float32 (n, 3 * (BLOCK**2 - 1)) unit-norm descriptors of uint8 (n, 3, H, W)."""
    H, W = images.shape[-2:]
    P = torch.from_numpy(_projection(H, 0.0, H)).float()
    Q = torch.from_numpy(_projection(W, 0.0, W)).float()
    out = [_normalise(P @ torch.as_tensor(images[s:s + batch]).float() @ Q.T)
           for s in range(0, len(images), batch)]
    return torch.cat(out) if out else torch.zeros(0, 3 * (BLOCK * BLOCK - 1))


def view_features(images: torch.Tensor) -> torch.Tensor:
    """float32 (m, V, d): descriptors of every crop view (CROP_SCALES x a CROP_STEPS grid
    of positions) of square uint8 (m, 3, S, S) images."""
    P, Q = _views(images.shape[-1])
    x = torch.as_tensor(images).float()
    rows = torch.einsum("vih,mchw->mvciw", P, x)
    return _normalise(torch.einsum("mvciw,vjw->mvcij", rows, Q))


def find_duplicates(pretrain, targets: torch.Tensor, threshold: float = DEFAULT_THRESHOLD,
                    chunk: int = 2048, target_block: int = 64) -> list[tuple[int, int, float]]:
    """(target index, pretraining position, similarity) of every pair at or above
    `threshold`. `pretrain` is a PretrainSet (images read in chunks) or a uint8 tensor;
    `targets` a uint8 (m, 3, H, W) tensor. Sorted by target index, then similarity."""
    m = len(targets)
    views = [view_features(targets[b:b + target_block]) for b in range(0, m, target_block)]
    n = len(pretrain)
    pairs = []
    for s in range(0, n, chunk):
        pos = torch.arange(s, min(s + chunk, n))
        fp = features(pretrain.images(pos) if hasattr(pretrain, "images") else pretrain[pos])
        for b, fv in enumerate(views):
            sim = (fv.flatten(0, 1) @ fp.T).view(fv.shape[0], fv.shape[1], -1).amax(1)
            ti, pj = torch.nonzero(sim >= threshold, as_tuple=True)
            pairs += [(b * target_block + int(i), s + int(j), round(float(sim[i, j]), 4))
                      for i, j in zip(ti, pj)]
    return sorted(pairs, key=lambda p: (p[0], -p[2], p[1]))


# ----- per (dataset, target) files -----------------------------------------------------------
def _dataset_spec(data_cfg: DataConfig, image_size: int) -> dict:
    world = world_fields(data_cfg.world)
    world_hash = hashlib.sha1(json.dumps(world, sort_keys=True).encode()).hexdigest()[:8]
    return {"source": data_cfg.source, "path": data_cfg.path, "seed": int(data_cfg.seed),
            "images": int(data_cfg.images), "image_size": int(image_size),
            "world_hash": world_hash}


def dataset_key(data_cfg: DataConfig, image_size: int) -> str:
    """Names one pretraining image set: source, where it lives, N and image size
    (vocabulary, resampling and noise do not change which images it holds)."""
    spec = _dataset_spec(data_cfg, image_size)
    if spec["source"] == "synthetic":
        where = f"s{spec['seed']}-w{spec['world_hash']}"
    else:
        where = hashlib.sha1(str(Path(spec["path"]).resolve()).encode()).hexdigest()[:8]
    key = f"{spec['source']}-{where}-n{spec['images']}-px{spec['image_size']}"
    supervised = data_cfg.supervised
    if supervised:   # the supervised baseline pretrains on other images: another set
        key += "-sup" + hashlib.sha1(str(supervised).encode()).hexdigest()[:8]
    return key


def dedup_path(data_cfg: DataConfig, image_size: int, target: str, out_dir) -> Path:
    return Path(out_dir) / "dedup" / f"{dataset_key(data_cfg, image_size)}__{target}.json"


def write_duplicates(data_cfg: DataConfig, image_size: int, target: str, out_dir, n_test: int,
                     threshold: float = DEFAULT_THRESHOLD, pset=None) -> Path:
    """Find target test images [0, n_test) with near-duplicates among the pretraining set
    and write them to `dedup_path(...)`; returns that path. `pset` reuses a built set."""
    from contract.target_spec import parse_target
    from data.pretrain import build_pretrain_set
    from data.targets import load_target_split

    if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 1:
        raise ConfigError(f"n_test={n_test!r} is invalid: use at least 1 test image "
                          "(leave it out for the run's transfer.test_images)")
    spec = parse_target(target, "target")
    if pset is None:
        pset = build_pretrain_set(data_cfg, image_size)
    test_x = load_target_split(data_cfg, image_size, spec, "test", n_test).images
    target = spec.name
    pairs = find_duplicates(pset, test_x, threshold)
    path = dedup_path(data_cfg, image_size, target, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"schema_version": SCHEMA_VERSION, "dataset": _dataset_spec(data_cfg, image_size),
           "dataset_key": dataset_key(data_cfg, image_size), "target": target, "split": "test",
           "n_test": int(n_test), "method": METHOD, "threshold": threshold,
           "duplicates": sorted({p[0] for p in pairs}),
           "pairs": [[t, j, int(pset.indices[j]), d] for t, j, d in pairs]}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc) + "\n")
    tmp.replace(path)
    return path


def read_duplicates(path) -> Optional[list[int]]:
    """Target test indices listed in a dedup file, or None if it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    return list(json.loads(path.read_text())["duplicates"])
