"""Real weakly labelled images: Hugging Face `datasets` on local disk and WebDataset shards.

Both readers yield records in one deterministic order (shards / files sorted by name, then
their order inside each file), and the N-image set is the first N records, so the 10x set
contains the 1x set exactly as for the synthetic world. Every record counts towards N:

- a record whose image is missing, truncated or undecodable, or whose tags are not a list
  of strings, is skipped and counted in `PretrainSet.corrupt` (never fatal);
- a record left with no vocabulary tag (an empty tag list included) is dropped and counted
  in `dropped`, as a tagless synthetic image is;

so len + dropped + corrupt = N.

Files next to the data (in the folder, or the folder of a shard pattern) refine it; all
optional except as noted:

    synonyms.json   {"schema_version": 1, "synonyms": {raw spelling: canonical tag}}
    vocab.json      {"schema_version": 1, "tags": [canonical tags], "frequency": [float]}
                    the tag ranking behind `vocab: K` (else: counts in the N-image set,
                    ties by name); shipping it keeps the classes fixed across N
    classes/<target>.txt   one class name per line: what `vocab: matched:<target>` matches
    meta.json       written by `data.materialize`: which synthetic world the copy came from

Raw tags are canonicalised: lower case, leading '#' removed, then the synonym map.

Layouts read (`data.path`):
- webdataset: a brace pattern `dir/shard-{000000..000003}.tar`, one .tar, or a folder of
  .tar files. A sample is the files sharing a key (the name up to the first '.'): one image
  (png, jpg, jpeg, webp, ppm, bmp, tif, tiff, gif) and `<key>.json` = {"tags": [...]} (or a
  bare list).
- hf: a folder of parquet files (any depth), a `save_to_disk` folder, a folder of .arrow
  files, or an imagefolder with `metadata.jsonl` / `metadata.csv`; columns `image` (an
  `Image()` feature, or raw bytes) and `tags` (a list of strings, or one string split on
  spaces and commas).
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from contract import versions
from contract.config import DataConfig
from contract.errors import ConfigError, RunError
from contract.world_config import world_fields
from data.imageio import canonical_spelling, canonical_tags, decode_image, load_synonyms
from data.pretrain import PretrainSet, finish_tags, vocab_filter
from data.vocab import parse_random_vocab, random_vocab

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp", "ppm", "bmp", "tif", "tiff", "gif")
SCHEMA_VERSION = versions.DATASET  # contract/versions.py
_BATCH = 1024

# A record: (reference to re-read the image later, image bytes or None, raw tags or None
# when they are malformed). The reference is bytes, a file path, or (tar, offset, size).
Record = tuple[object, Optional[bytes], Optional[list]]


# ----- where the data is -------------------------------------------------------------------
def source_root(path: str) -> Path:
    """The folder holding the data and its side files (synonyms.json, vocab.json, ...)."""
    p = Path(path)
    if "{" in path or p.is_file():
        return p.parent
    return p


def webdataset_shards(path: str) -> list[Path]:
    """Shard files in stream order: brace pattern order, else sorted by name."""
    if "{" in path:
        from braceexpand import braceexpand

        shards = [Path(s) for s in braceexpand(path)]
        missing = [str(s) for s in shards if not s.is_file()]
        if missing:
            raise FileNotFoundError(f"data.path={path!r}: {len(missing)} shard(s) missing, "
                                    f"first {missing[0]}")
        return shards
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        shards = sorted(p.rglob("*.tar"))
        if shards:
            return shards
    raise FileNotFoundError(f"data.path={path!r} holds no WebDataset shards: give a .tar, a "
                            "folder of .tar files or a pattern like dir/shard-{000000..000009}.tar")


# ----- readers -------------------------------------------------------------------------------
def _parse_tags(raw) -> Optional[list]:
    """A list of strings, or None when `raw` is malformed (the record is then corrupt)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [t for t in re.split(r"[\s,]+", raw) if t]
    if isinstance(raw, (list, tuple)) and all(isinstance(t, str) for t in raw):
        return list(raw)
    return None


def _json_tags(data: Optional[bytes]) -> Optional[list]:
    if data is None:
        return []
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return _parse_tags(doc.get("tags") if isinstance(doc, dict) else doc)


def _split_key(name: str) -> tuple[str, str]:
    """WebDataset's convention: key = path up to the first '.' of the file name."""
    head, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (head + "/" + stem if head else stem), ext.lower()


def iter_webdataset(path: str) -> Iterator[Record]:
    for shard in webdataset_shards(path):
        key: Optional[str] = None
        parts: dict[str, Optional[tuple[int, int, bytes]]] = {}  # ext -> (offset, size, bytes)
        try:
            with tarfile.open(shard, mode="r:") as tf:
                for m in tf:
                    member = tf.extractfile(m) if m.isfile() else None
                    if member is None:
                        continue
                    k, ext = _split_key(m.name)
                    if k != key and key is not None:
                        yield _wds_record(shard, parts)
                        parts = {}
                    key = k
                    parts[ext] = (m.offset_data, m.size, member.read())
        except (tarfile.TarError, EOFError, OSError):
            parts["__broken__"] = None     # a truncated shard: its last sample is corrupt
        if key is not None or parts:
            yield _wds_record(shard, parts)


def _wds_record(shard: Path, parts: dict) -> Record:
    if "__broken__" in parts:
        return None, None, None
    tags = _json_tags(parts["json"][2]) if "json" in parts else []
    for ext in IMAGE_EXTS:
        if ext in parts:
            offset, size, data = parts[ext]
            return (str(shard), offset, size), data, tags
    return None, None, tags


def _hf_tables(path: str) -> Iterator:
    """pyarrow tables (batches) of the HF dataset at `path`, in a deterministic order.
    Parquet is read with pyarrow directly (no copy into the datasets cache); the other
    layouts go through `datasets`."""
    p = Path(path)
    if p.is_file() and p.suffix == ".parquet":
        files = [p]
    elif not p.is_dir():
        raise FileNotFoundError(f"data.path={path!r} does not exist: give a folder of "
                                "parquet / arrow files or an imagefolder")
    else:
        files = sorted(p.rglob("*.parquet"))
    if files:
        import pyarrow.parquet as pq

        for f in files:
            yield from pq.ParquetFile(f).iter_batches(batch_size=_BATCH)
        return
    import datasets

    if (p / "dataset_info.json").is_file() or (p / "state.json").is_file():
        ds = datasets.load_from_disk(str(p))
    elif arrows := sorted(p.rglob("*.arrow")):
        ds = datasets.concatenate_datasets([datasets.Dataset.from_file(str(a)) for a in arrows])
    elif any(p.rglob("metadata.jsonl")) or any(p.rglob("metadata.csv")):
        ds = datasets.load_dataset("imagefolder", data_dir=str(p), split="train")
    else:
        raise FileNotFoundError(f"data.path={path!r} holds no parquet, arrow or imagefolder "
                                "(metadata.jsonl) data for data.source='hf'")
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    yield from ds.with_format("arrow").iter(batch_size=_BATCH)


def iter_hf(path: str) -> Iterator[Record]:
    for table in _hf_tables(path):
        names = table.schema.names
        if "image" not in names or "tags" not in names:
            raise ConfigError(f"data.path={path!r}: data.source='hf' needs columns 'image' and "
                              f"'tags'; found {names}")
        img = table.column("image")
        if hasattr(img, "combine_chunks"):
            img = img.combine_chunks()
        if img.type.num_fields:                      # datasets' Image(): {bytes, path}
            blobs, paths = img.field("bytes").to_pylist(), img.field("path").to_pylist()
        else:
            blobs, paths = img.to_pylist(), [None] * len(img)
        for blob, fpath, raw in zip(blobs, paths, table.column("tags").to_pylist()):
            tags = _parse_tags(raw)
            if blob is None and fpath:
                try:
                    blob = Path(fpath).read_bytes()
                except OSError:
                    blob = None
                yield fpath, blob, tags
            else:
                yield blob, blob, tags


def iter_records(source: str, path: str) -> Iterator[Record]:
    if source == "webdataset":
        return iter_webdataset(path)
    if source == "hf":
        return iter_hf(path)
    raise ConfigError(f"data.source={source!r} is not a real-data source: use 'hf' or 'webdataset'")


def read_ref(ref) -> bytes:
    if isinstance(ref, bytes):
        return ref
    if isinstance(ref, tuple):
        shard, offset, size = ref
        with open(shard, "rb") as f:
            f.seek(offset)
            return f.read(size)
    return Path(ref).read_bytes()


# ----- vocabulary ----------------------------------------------------------------------------
def _tag_table(root: Path, names_per_record: list[list[str]]) -> tuple[list[str], np.ndarray]:
    """(canonical tags in id order, ranking frequency): vocab.json's, else counts."""
    path = root / "vocab.json"
    if path.is_file():
        doc = json.loads(path.read_text())
        tags = [canonical_spelling(t) for t in doc["tags"]]
        freq = [float(f) for f in doc.get("frequency", [0.0] * len(tags))]
        known = set(tags)
        extra = sorted({t for names in names_per_record for t in names} - known)
        return tags + extra, np.array(freq + [-1.0] * len(extra))
    counts: dict[str, int] = {}
    for names in names_per_record:
        for t in names:
            counts[t] = counts.get(t, 0) + 1
    tags = sorted(counts, key=lambda t: (-counts[t], t))
    return tags, np.array([counts[t] for t in tags], dtype=np.float64)


def _resolve_real_vocab(root: Path, tags: list[str], freq: np.ndarray, vocab,
                        seed: int = 0) -> np.ndarray:
    order = np.lexsort((np.arange(len(freq)), -freq))          # by -freq, then id
    if isinstance(vocab, (int, np.integer)) and not isinstance(vocab, bool):
        if vocab > len(order):  # clipping would train K=all under another name and hash
            raise ConfigError(f"data.vocab={vocab!r} is invalid: the first {len(tags)} records "
                              f"carry only {len(order)} canonical tags: use at most "
                              f"{len(order)} or 'all'")
        return order[: int(vocab)]
    if vocab == "all":
        return order
    k = parse_random_vocab(vocab)
    if k is not None:
        return random_vocab(order, k, seed, vocab, f"the first {len(tags)} records carry")
    target = str(vocab).split(":", 1)[1]
    path = root / "classes" / f"{target}.txt"
    if not path.is_file():
        raise ConfigError(f"data.vocab={vocab!r} needs the class names of target {target!r}: "
                          f"write them one per line to {path}")
    classes = {canonical_spelling(line) for line in path.read_text().splitlines() if line.strip()}
    ids = np.array([i for i, t in enumerate(tags) if t in classes], dtype=np.int64)
    if len(ids) == 0:
        raise ConfigError(f"data.vocab={vocab!r} is invalid: no hashtag in {root} names the "
                          f"{target!r} classes of {path}")
    return order[np.isin(order, ids)]


# ----- the pretraining set -------------------------------------------------------------------
def build_real_pretrain_set(data_cfg: DataConfig, image_size: int) -> PretrainSet:
    """The first data.images records of data.path as a PretrainSet (see module docstring)."""
    N, S, path = int(data_cfg.images), int(image_size), str(data_cfg.path)
    root = source_root(path)
    synonyms = load_synonyms(root)
    positions, names, refs, pixels = [], [], [], []
    corrupt, seen = 0, 0
    for i, (ref, blob, raw) in enumerate(iter_records(data_cfg.source, path)):
        if i >= N:
            break
        seen += 1
        image = decode_image(blob, S) if raw is not None else None
        if image is None or raw is None:
            corrupt += 1
            continue
        positions.append(i)
        names.append(canonical_tags(raw, synonyms))
        refs.append(ref)
        if data_cfg.cache:
            pixels.append(image)
    if seen < N:
        raise ConfigError(f"data.images={N} but data.path={path!r} holds only {seen} samples: "
                          "use at most that many")
    limit = float(data_cfg.max_corrupt_frac)
    if corrupt > limit * N:
        raise RunError(f"data.path={path!r}: {corrupt} of the first {N} records "
                       f"({corrupt / N:.1%}) have a missing, truncated or undecodable image "
                       f"or malformed tags, more than data.max_corrupt_frac={limit}: repair "
                       "the data or raise data.max_corrupt_frac")
    if corrupt == N:  # not 'no image kept a vocabulary tag': there was no image to keep
        raise RunError(f"data.path={path!r}: all {N} records are unreadable (missing, "
                       "truncated or undecodable images or malformed tags): the "
                       f"{data_cfg.source} files are corrupt: repair or replace them")
    tags, freq = _tag_table(root, names)
    vocab = _resolve_real_vocab(root, tags, freq, data_cfg.vocab, data_cfg.seed)
    id_of = {t: i for i, t in enumerate(tags)}
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum([len(n) for n in names], out=offsets[1:])
    flat = np.concatenate([np.sort([id_of[t] for t in n]) for n in names if n] or
                          [np.zeros(0)]).astype(np.int64)
    lut = np.full(len(tags), -1, dtype=np.int64)
    lut[vocab] = np.arange(len(vocab))
    rows = np.arange(len(names))
    kept_rows, counts, cls = vocab_filter(rows, offsets, flat, lut)
    indices = np.asarray(positions, dtype=np.int64)[kept_rows]
    offsets, cls = finish_tags(int(data_cfg.seed), indices, [counts], [cls],
                               data_cfg.label_noise, len(vocab), data_cfg.label_noise_from)
    cache: bool | torch.Tensor = False
    if data_cfg.cache:
        cache = torch.from_numpy(np.stack([pixels[r] for r in kept_rows]) if len(kept_rows)
                                 else np.zeros((0, 3, S, S), np.uint8))
    kept_refs = [refs[r] for r in kept_rows]

    def fetch(pos: np.ndarray) -> np.ndarray:
        out = np.empty((len(pos), 3, S, S), dtype=np.uint8)
        for j, p in enumerate(np.asarray(pos).tolist()):
            image = decode_image(read_ref(kept_refs[p]), S)
            if image is None:
                raise OSError(f"{data_cfg.source} record {indices[p]} of {path} no longer "
                              "decodes (changed on disk since the set was built)")
            out[j] = image
        return out

    return PretrainSet(indices, offsets, cls, vocab, [tags[t] for t in vocab], image_size=S,
                       fetch=fetch, dropped=len(names) - len(kept_rows), targets=data_cfg.targets,
                       cache=cache, resample=data_cfg.resample, corrupt=corrupt,
                       source=data_cfg.source)


# ----- target splits -------------------------------------------------------------------------
def read_meta(root: Path) -> Optional[dict]:
    path = Path(root) / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else None


def check_materialized_world(data_cfg: DataConfig) -> None:
    """Target splits of a real source exist only for a copy materialized from the synthetic
    world that data.seed / data.world name (they are that world's target splits)."""
    root = source_root(str(data_cfg.path))
    origin = (read_meta(root) or {}).get("materialized_from")
    if not origin:
        raise ConfigError(f"data.source={data_cfg.source!r}: target splits come from the synthetic "
                          f"world, and {root} was not materialized from it (no meta.json); "
                          "user-supplied target sets are not supported yet")
    world = world_fields(data_cfg.world)
    if origin.get("seed") != int(data_cfg.seed) or origin.get("world") != world:
        raise ConfigError(f"data.seed / data.world differ from the world {root} was materialized "
                          f"from (seed {origin.get('seed')}): set them as in {root / 'meta.json'}")
