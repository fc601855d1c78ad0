"""Image bytes <-> uint8 arrays, and raw hashtag strings -> canonical tags.

Shared by the real-data readers (`data.sources`), `data.materialize` and `data.dedup`, so a
materialized copy is decoded exactly the way it was encoded.

Decoding never raises on bad input: a truncated, undecodable or non-image payload returns
None, and the caller skips and counts it (a crawl always holds a few of those, and one bad
file must not end a week-long job).
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from contract.errors import ConfigError

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def encode_png(image: np.ndarray, compress_level: int = 1) -> bytes:
    """Lossless PNG bytes of one uint8 (3, H, W) image. Level 1: the pixels are noisy, so
    higher levels buy little size for several times the time."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(
        buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_image(data: Optional[bytes], size: int) -> Optional[np.ndarray]:
    """uint8 (3, size, size): the shorter side resized to `size`, then a centre crop; an
    image already size x size keeps its pixels exactly. None if `data` is not a readable
    image."""
    if not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # PIL warns on odd metadata; not our call
            with Image.open(io.BytesIO(data)) as im:
                im.load()                            # truncated files fail here, not later
                rgb = im.convert("RGB")
    except _DECODE_ERRORS:
        return None
    w, h = rgb.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        rgb = rgb.resize((nw, nh), Image.Resampling.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        rgb = rgb.crop((left, top, left + size, top + size))
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


# ----- tags --------------------------------------------------------------------------------
def canonical_spelling(raw: str) -> str:
    """Lower case, no surrounding space, no leading '#'s: '#Dog ' -> 'dog'."""
    return raw.strip().lower().lstrip("#").strip()


def load_synonyms(root: Path) -> dict[str, str]:
    """`root/synonyms.json` ({"schema_version": 1, "synonyms": {raw: canonical}}) with keys
    and values canonically spelled; {} when the source ships no map."""
    path = Path(root) / "synonyms.json"
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    table = doc.get("synonyms", doc) if isinstance(doc, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected {{'synonyms': {{raw: canonical}}}}")
    return {canonical_spelling(k): canonical_spelling(v) for k, v in table.items()}


def canonical_tags(raw: Iterable[str], synonyms: dict[str, str]) -> list[str]:
    """Unique canonical tags of one image, in first-seen order; empty strings dropped."""
    out: dict[str, None] = {}  # an ordered set
    for tag in raw:
        tag = canonical_spelling(str(tag))
        if tag:
            out[synonyms.get(tag, tag)] = None
    return list(out)
