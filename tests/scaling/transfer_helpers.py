"""Tiny user target sets (image folders, `datasets` folders) and pretraining sets with planted
copies of their test images, for the transfer tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("red", "green", "blue")


def class_image(c: int, rng, side: int = 16) -> np.ndarray:
    """uint8 (H, W, 3): class c is a ramp along one axis in one colour channel (easy to tell
    apart, and with structure at low frequencies so near-duplicate search can see it)."""
    ramp = np.linspace(0, 1, side)
    grid = ramp[None, :] if c % 2 == 0 else ramp[:, None]
    img = np.full((side, side, 3), 40.0)
    img[..., c % 3] += 180 * np.broadcast_to(grid, (side, side)) * rng.uniform(0.7, 1.0)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def noise_image(rng, side: int = 16) -> np.ndarray:
    return rng.integers(0, 256, (side, side, 3), dtype=np.uint8)


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def make_imagefolder(root: Path, per_class: int = 12, splits=("train", "test"),
                     seed: int = 0, classes=CLASSES) -> Path:
    rng = np.random.default_rng(seed)
    for split in splits:
        for c, name in enumerate(classes):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                (folder / f"{i:03d}.png").write_bytes(png(class_image(c, rng)))
    return root


def make_hf_dataset(root: Path, n: int = 60, seed: int = 1, splits=("train",)) -> Path:
    """A `datasets` save_to_disk folder (DatasetDict of `splits`) with an Image() column
    `img` and a ClassLabel column `y`."""
    import datasets

    rng = np.random.default_rng(seed)
    features = datasets.Features({"img": datasets.Image(),
                                  "y": datasets.ClassLabel(names=list(CLASSES))})
    parts = {}
    for split in splits:
        labels = [i % len(CLASSES) for i in range(n)]
        images = [Image.fromarray(class_image(c, rng)) for c in labels]
        parts[split] = datasets.Dataset.from_dict({"img": images, "y": labels},
                                                  features=features)
    datasets.DatasetDict(parts).save_to_disk(str(root))
    return root


def make_hf_pretraining(root: Path, copies: list[bytes], n_noise: int = 40,
                        seed: int = 2) -> Path:
    """A parquet pretraining set (`image`, `tags`): random-noise images tagged a/b/c plus
    exact copies (`copies`, PNG bytes) of some target test images."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    blobs = [png(noise_image(rng)) for _ in range(n_noise)] + list(copies)
    tags = [["#" + "abc"[i % 3]] for i in range(len(blobs))]
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"image": blobs, "tags": tags}), root / "part-0.parquet")
    return root
