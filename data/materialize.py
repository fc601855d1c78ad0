"""Write the synthetic world's first n pretraining images as a real dataset (lossless PNG).

What `scaling data materialize` runs. The copy is what a crawl looks like to the readers in
`data.sources`: raw hashtag spellings (a synonym of each canonical tag, sometimes with '#'
or in capitals), chosen per (seed, image, tag slot) by the counter hash so the copy is
reproducible, plus the side files that map them back:

    <out>/shard-000000.tar ...           webdataset: <key>.png + <key>.json {"tags": [...]}
    <out>/data/train-00000-of-0000K.parquet   hf: columns key, image (Image()), tags (list)
    <out>/synonyms.json   raw spelling -> canonical tag
    <out>/vocab.json      canonical tags in the world's id order + expected frequency, so
                          `vocab: K` ranks tags exactly as the synthetic source does
    <out>/classes/<target>.txt   class names per target (for `vocab: matched:<target>`)
    <out>/meta.json       {"schema_version", "format", "n", "image_size", "files",
                           "materialized_from": {"source", "seed", "world"}}
    <out>/.wsl-materialized   marker, written first: `overwrite` only ever replaces a folder
                          that carries it (a previous materialization, finished or not)

Keys are the world index, zero-padded to 9 digits, so record i of the copy is world image i
and `build_pretrain_set` on the copy equals the synthetic set (pixels, tags, classes).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np

from contract import versions
from contract.config import DataConfig
from contract.errors import ConfigError
from contract.world_config import world_fields
from data.imageio import encode_png
from data.pretrain import world_for
from data.rng import uniform
from data.world import TARGETS

SCHEMA_VERSION = versions.DATASET  # contract/versions.py
MARKER = ".wsl-materialized"
FORMATS = ("webdataset", "hf")
_S_SPELLING = 8
_BLOCK = 512


def raw_spellings(world, indices: np.ndarray) -> list[list[str]]:
    """Raw hashtags of each image: one synonym per canonical tag, '#'-prefixed half the time
    and upper-cased a fifth of the time (what canonicalisation must undo)."""
    forms: dict[str, list[str]] = {}
    for raw, canon in world.synonyms.items():
        forms.setdefault(canon, []).append(raw)
    offsets, flat = world.pretrain_tags_csr(indices)
    counts = np.diff(offsets)
    width = int(counts.max()) if len(counts) else 0
    u = uniform(world.seed, indices, _S_SPELLING, 3 * max(width, 1))
    out = []
    for r in range(len(indices)):
        tags = []
        for j, t in enumerate(flat[offsets[r]:offsets[r + 1]].tolist()):
            choices = forms[world.tag_names[t]]
            tag = choices[min(int(u[r, 3 * j] * len(choices)), len(choices) - 1)]
            tag = tag.upper() if u[r, 3 * j + 2] < 0.2 else tag
            tags.append(("#" + tag) if u[r, 3 * j + 1] < 0.5 else tag)
        out.append(tags)
    return out


def _blocks(world, n: int):
    """(indices, PNG bytes, raw tags) per block of images, in world order."""
    for start in range(0, n, _BLOCK):
        idx = np.arange(start, min(start + _BLOCK, n), dtype=np.int64)
        images = world.render_pretrain(idx)
        yield idx, [encode_png(im) for im in images], raw_spellings(world, idx)


def _write_tar(path: Path, samples: list[tuple[str, bytes, list[str]]]) -> None:
    tmp = path.with_suffix(".tar.tmp")
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tf:
        for key, png, tags in samples:
            for name, payload in ((f"{key}.png", png),
                                  (f"{key}.json", json.dumps({"tags": tags}).encode())):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(payload), 0, 0o644
                tf.addfile(info, io.BytesIO(payload))
    tmp.replace(path)


def _write_parquet(path: Path, samples: list[tuple[str, bytes, list[str]]]) -> None:
    import datasets

    features = datasets.Features({"key": datasets.Value("string"), "image": datasets.Image(),
                                  "tags": datasets.List(datasets.Value("string"))})
    ds = datasets.Dataset.from_dict(
        {"key": [s[0] for s in samples],
         "image": [{"bytes": s[1], "path": None} for s in samples],
         "tags": [s[2] for s in samples]}, features=features)
    tmp = path.with_name(path.name + ".tmp")
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()                 # one bar per shard is noise in job logs
    try:
        ds.to_parquet(str(tmp))
    finally:
        if bars:
            datasets.enable_progress_bars()
    tmp.replace(path)


def _is_materialization(out: Path) -> bool:
    if (out / MARKER).is_file():
        return True
    try:  # copies written before the marker existed: their meta.json says what they are
        meta = json.loads((out / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "materialized_from" in meta and meta.get("format") in FORMATS


def check_replaceable(out: Path, protect=()) -> None:
    """Refuse to delete `out` unless it is a previous materialization that holds neither
    the current folder nor any of `protect` (the inputs, e.g. the config just read)."""
    real = out.resolve()
    for keep in [Path.cwd(), *map(Path, protect)]:
        keep = keep.resolve()
        if keep == real or real in keep.parents:
            raise FileExistsError(f"out={str(out)!r} holds {keep}: --overwrite never deletes "
                                  "the current folder or a folder holding the inputs; "
                                  "choose another out folder")
    if not _is_materialization(out):
        raise FileExistsError(f"out={str(out)!r} is not empty and is not a previous "
                              f"materialization (no {MARKER} in it): --overwrite only "
                              "replaces one; choose an empty or new out folder")


def materialize(data_cfg: DataConfig, image_size: int, out: str | Path, fmt: str = "webdataset",
                n: int | None = None, shard_size: int = 1000, overwrite: bool = False,
                protect=()) -> Path:
    """Write world images [0, n) of the world data.seed / data.world name (n defaults to
    data.images) at `image_size` to `out` as `fmt` ('webdataset' or 'hf'), `shard_size`
    images per tar / parquet file. Returns the folder to use as data.path. `overwrite`
    replaces only a previous materialization, never one holding the current folder or
    any path in `protect`."""
    if fmt not in FORMATS:
        raise ConfigError(f"fmt={fmt!r} is invalid: use one of {', '.join(FORMATS)}")
    n = int(data_cfg.images if n is None else n)
    if n < 1 or shard_size < 1:
        raise ConfigError(f"n={n}, shard_size={shard_size} are invalid: use at least 1 each")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out={str(out)!r} is a file: choose a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty: choose another folder or overwrite=True")
        check_replaceable(out, protect)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `scaling data materialize`; --overwrite may "
                              "replace this folder\n")
    world = world_for(data_cfg, image_size)
    shards = -(-n // shard_size)
    if fmt == "webdataset":
        names = [f"shard-{k:06d}.tar" for k in range(shards)]
        write = _write_tar
    else:
        (out / "data").mkdir()
        names = [f"data/train-{k:05d}-of-{shards:05d}.parquet" for k in range(shards)]
        write = _write_parquet
    pending, shard = [], 0
    for idx, pngs, tags in _blocks(world, n):
        pending += [(f"{i:09d}", p, t) for i, p, t in zip(idx.tolist(), pngs, tags)]
        while len(pending) >= shard_size or (pending and idx[-1] == n - 1):
            write(out / names[shard], pending[:shard_size])
            pending, shard = pending[shard_size:], shard + 1

    _write_json(out / "synonyms.json", {"schema_version": SCHEMA_VERSION,
                                        "synonyms": world.synonyms})
    _write_json(out / "vocab.json", {"schema_version": SCHEMA_VERSION, "tags": world.tag_names,
                                     "frequency": world.expected_tag_frequency().tolist()})
    (out / "classes").mkdir()
    for target in TARGETS:
        _, class_names = world.target_classes(target)
        (out / "classes" / f"{target}.txt").write_text("\n".join(class_names) + "\n")
    world_dict = world_fields(data_cfg.world)
    _write_json(out / "meta.json", {
        "schema_version": SCHEMA_VERSION, "format": fmt, "n": n, "image_size": int(image_size),
        "shard_size": int(shard_size), "files": names,
        "materialized_from": {"source": "synthetic", "seed": int(data_cfg.seed),
                              "world": world_dict}})
    return out


def _write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=1) + "\n")
