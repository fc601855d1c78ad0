"""Data throughput on one core: rendering, tagging, pretrain-set build, cached loading, and
the real formats (materialize = generate + PNG encode + write; build = read + decode + cache).

    python bench/bench_data.py [--image_size 32] [--images 8192] [--batch 256]

Prints a table of images/s per core (torch and numpy pinned to one thread by the caller's
environment; run with OMP_NUM_THREADS=1 for a strict per-core number).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from contract.config import DataConfig
from contract.world_config import WorldConfig
from data import (
    ResumableLoader,
    SyntheticWorld,
    build_pretrain_set,
    build_target_split,
)
from data.materialize import materialize


def _rate(fn, images: int, repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return images / best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image_size", type=int, default=32)
    ap.add_argument("--images", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    S, n, B = a.image_size, a.images, a.batch
    world = SyntheticWorld(WorldConfig(), seed=0, image_size=S)
    idx = np.arange(n, dtype=np.int64)

    def render():
        for s in range(0, n, B):
            world.render_pretrain(idx[s:s + B])

    cfg = DataConfig(source="synthetic", path=None, images=n, vocab="all",
                     resample="natural", label_noise=0.0, targets="soft", seed=0,
                     cache=True, world=WorldConfig())
    rows = [("render pretrain (numpy)", f"batch {B}", _rate(render, n)),
            ("tags (canonical, CSR)", f"{n} images",
             _rate(lambda: world.pretrain_tags_csr(idx), n)),
            ("target split (fine)", f"{n} images",
             _rate(lambda: build_target_split(cfg, S, "fine", "train", n), n, 1)),
            ("build pretrain set + cache", f"{n} images",
             _rate(lambda: build_pretrain_set(cfg, S), n, 1))]
    pset = build_pretrain_set(cfg, S)
    for resample in ("natural", "sqrt"):
        loader = ResumableLoader(pset, B, 0, 1, 0, resample)
        steps = max(1, n // B)
        rows.append((f"ResumableLoader cached ({resample})", f"batch {B}",
                     _rate(lambda: [loader.next_batch() for _ in range(steps)], steps * B)))
    uncached = build_pretrain_set(DataConfig(**{**vars(cfg), "cache": False}), S)
    loader = ResumableLoader(uncached, B, 0, 1, 0, "natural")
    steps = max(1, n // B // 4)
    rows.append(("ResumableLoader uncached (render)", f"batch {B}",
                 _rate(lambda: [loader.next_batch() for _ in range(steps)], steps * B)))

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("webdataset", "hf"):
            out = os.path.join(tmp, fmt)
            rows.append((f"materialize {fmt}", f"{n} images", _rate(
                lambda: materialize(cfg, S, out, fmt, n=n, overwrite=True), n, 1)))
            real = DataConfig(**{**vars(cfg), "source": fmt, "path": out})
            rows.append((f"build {fmt} set (decode + cache)", f"{n} images",
                         _rate(lambda: build_pretrain_set(real, S), n, 1)))
        real = DataConfig(**{**vars(cfg), "source": "webdataset", "cache": False,
                              "path": os.path.join(tmp, "webdataset")})
        loader = ResumableLoader(build_pretrain_set(real, S), B, 0, 1, 0, "natural")
        steps = max(1, n // B // 4)
        rows.append(("ResumableLoader webdataset uncached", f"batch {B}",
                     _rate(lambda: [loader.next_batch() for _ in range(steps)], steps * B)))

    print(f"data throughput, {S} px, 1 thread")
    print(f"{'stage':36s} {'unit':>14s} {'images/s/core':>14s}")
    for name, unit, rate in rows:
        print(f"{name:36s} {unit:>14s} {rate:14,.0f}")


if __name__ == "__main__":
    main()
