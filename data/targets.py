"""Labelled target sets: the synthetic world's and the user's own (image folder, `datasets`).

Layouts read (`contract/target_spec.py` says how a config names them):

- imagefolder: `<path>/train/<class>/*` and `<path>/test/<class>/*` (`val` or `validation`
  stand in for test), or `<path>/<class>/*` (one split). Classes are the train split's
  sub-folders, sorted; files of a test class unknown to train are counted as bad.
- hf: a `save_to_disk` folder (a DatasetDict with train/test, or a single Dataset), or a
  folder of parquet files whose path names the split (`train-0000.parquet`,
  `data/test-....parquet`; a folder without split names is one split). Columns
  `image_column` (an `Image()` feature or raw bytes) and `label_column` (a `ClassLabel`,
  integers or strings).

With one split only, test is carved deterministically: an image goes to test when a hash of
its name (file path, or row number) falls below `test_fraction`. Images that do not decode
or have no label are skipped and counted (`bad`), never fatal; a set with fewer than two
classes, or a split without images, is refused with one line naming the target.
`check_target` does the cheap half of these checks (no image decoded) at sweep time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from contract.config import DataConfig
from contract.errors import ConfigError
from contract.target_spec import TargetSpec, parse_target
from data.imageio import decode_image
from data.sources import IMAGE_EXTS

TEST_NAMES = ("test", "val", "validation")


@dataclass
class TargetSplit:
    images: torch.Tensor          # uint8 (n, 3, S, S)
    labels: torch.Tensor          # int64 (n,)
    classes: list[str]
    bad: int = 0                  # samples skipped: undecodable image or unusable label


class TargetError(ConfigError):
    """A target set that cannot be used (one line naming the target and the fix)."""


def _err(spec: TargetSpec, fix: str) -> TargetError:
    return TargetError(f"transfer target {spec.name!r} ({spec.format}:{spec.path}): {fix}")


def _root(spec: TargetSpec) -> Path:
    """The folder of a file-based target (parse_target always gives one a path)."""
    if spec.path is None:
        raise _err(spec, "no folder given: set its path")
    return Path(spec.path)


def _in_test(key: str, fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big")
    return h / 2.0 ** 64 < fraction


def _take(n_avail: int, n: int) -> np.ndarray:
    """Which of n_avail items (in their deterministic order) a cap of n keeps: a fixed
    random subset, so a cap never drops whole classes that sort late."""
    if n >= n_avail:
        return np.arange(n_avail)
    return np.sort(np.random.default_rng(0).permutation(n_avail)[:n])


# ----- image folders -------------------------------------------------------------------------
def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and p.suffix.lower().lstrip(".") in IMAGE_EXTS)


def _folder_splits(spec: TargetSpec) -> tuple[Path, Path | None]:
    root = _root(spec)
    if not root.is_dir():
        raise _err(spec, "no such folder: give a folder with one sub-folder per class")
    train = root / "train"
    if train.is_dir():
        test = next((root / t for t in TEST_NAMES if (root / t).is_dir()), None)
        return train, test
    if any((root / t).is_dir() for t in TEST_NAMES):
        raise _err(spec, "a test split but no train/ split: add train/<class>/ folders")
    return root, None


def _folder_items(spec: TargetSpec, split: str
                  ) -> tuple[list[tuple[str, Path, int]], list[str], int]:
    """[(hash key, file, label)] of one split, the class names, and files of unknown class."""
    train, test = _folder_splits(spec)
    class_dirs = _class_dirs(train)
    empty = [p for p in class_dirs if not _image_files(p)]
    if empty:  # a class with no image would be a label the probe can never see
        raise _err(spec, f"class folder {empty[0]} holds no images "
                   f"({len(empty)} such folder(s)): add images or remove the folder")
    classes = [p.name for p in class_dirs]
    index = {c: i for i, c in enumerate(classes)}
    folder = train if split == "train" or test is None else test
    items, unknown = [], 0
    for cdir in _class_dirs(folder):
        for f in _image_files(cdir):
            if cdir.name not in index:
                unknown += 1
                continue
            items.append((str(f.relative_to(folder)), f, index[cdir.name]))
    if test is None:
        items = [it for it in items if _in_test(it[0], spec.test_fraction) == (split == "test")]
    return items, classes, unknown


# ----- Hugging Face datasets -----------------------------------------------------------------
def _parquet_files(root: Path) -> dict[str, list[Path]]:
    files = sorted(root.rglob("*.parquet"))
    out: dict[str, list[Path]] = {}
    for f in files:
        parts = [p.lower() for p in f.relative_to(root).parts]
        tokens = {t for p in parts for t in p.replace(".", "-").replace("_", "-").split("-")}
        split = "train" if "train" in tokens else next((t for t in TEST_NAMES if t in tokens),
                                                       "all")
        out.setdefault("test" if split in TEST_NAMES else split, []).append(f)
    return out


def _read_parquet(spec: TargetSpec, path: Path):
    """One parquet file of a target, or a one-line error naming it when it is not one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except pa.ArrowException as exc:
        why = " ".join(str(exc).split())[:120]
        raise _err(spec, f"{path} is not a readable parquet file ({why}): replace it or "
                   "remove it") from None


def _hf_tables(spec: TargetSpec) -> tuple[dict, list[str] | None]:
    """{split: pyarrow Table} and the ClassLabel names when the data declares them."""
    import pyarrow as pa

    root = _root(spec)
    if not root.exists():
        raise _err(spec, "no such folder: give a `datasets` save_to_disk or parquet folder")
    by_split = _parquet_files(root) if root.is_dir() else {}
    if by_split:
        tables = {s: pa.concat_tables([_read_parquet(spec, f) for f in fs])
                  for s, fs in by_split.items()}
        names = None
        meta = next(iter(tables.values())).schema.metadata or {}
        if b"huggingface" in meta:
            feats = json.loads(meta[b"huggingface"]).get("info", {}).get("features", {})
            names = feats.get(spec.label_column, {}).get("names")
        return tables, names
    import datasets

    try:
        ds = datasets.load_from_disk(str(root))
    except (FileNotFoundError, ValueError) as exc:
        raise _err(spec, f"not a `datasets` folder ({' '.join(str(exc).split())[:120]}): "
                   "give a save_to_disk folder or parquet files") from None
    dsets = dict(ds) if isinstance(ds, datasets.DatasetDict) else {"all": ds}
    tables, names = {}, None
    for split, d in dsets.items():
        key = "test" if split in TEST_NAMES else split
        if key not in ("train", "test", "all"):
            continue
        feat = d.features.get(spec.label_column)
        names = names or getattr(feat, "names", None)
        tables[key] = d.with_format("arrow")[:]
    return tables, names


def _hf_items(spec: TargetSpec, split: str) -> tuple[list, list[str], int]:
    tables, names = _hf_tables(spec)
    if "train" not in tables and "all" not in tables:
        raise _err(spec, f"no train split (found {sorted(tables)}): name parquet files "
                   "train-*.parquet / test-*.parquet or save a DatasetDict with 'train'")
    if "test" not in tables:   # one split given: test is carved from it
        tables = {"all": tables.get("train", tables.get("all"))}
    one = "all" in tables
    for t in tables.values():
        for col in (spec.image_column, spec.label_column):
            if col not in t.schema.names:
                raise _err(spec, f"no column {col!r} (columns: {t.schema.names}): set "
                           "image_column / label_column in the target mapping")
    declared = names is not None
    if names is None:   # labels as given: strings or integers, sorted
        values = {v for t in tables.values() for v in t.column(spec.label_column).to_pylist()
                  if v is not None}
        names = sorted(str(v) for v in values) if not all(
            isinstance(v, int) for v in values) else [str(v) for v in sorted(values)]
    index = {n: i for i, n in enumerate(names)}
    table = tables["all"] if one else tables[split]
    img = table.column(spec.image_column).combine_chunks()
    if img.type.num_fields:
        blobs, paths = img.field("bytes").to_pylist(), img.field("path").to_pylist()
    else:
        blobs, paths = img.to_pylist(), [None] * len(img)
    items, bad = [], 0
    for row, (blob, path, label) in enumerate(zip(blobs, paths,
                                                  table.column(spec.label_column).to_pylist())):
        if one and _in_test(f"row{row}", spec.test_fraction) != (split == "test"):
            continue
        if label is None:
            bad += 1
            continue
        if declared and isinstance(label, int):
            key = names[label] if 0 <= label < len(names) else None
        else:
            key = str(label)
        if key not in index:
            bad += 1
            continue
        items.append((f"row{row}", blob if blob is not None else path, index[key]))
    return items, list(names), bad


# ----- the public entry points -----------------------------------------------------------
def check_target(spec: TargetSpec) -> dict:
    """Cheap sweep-time check of a user target (files and labels listed, no image decoded):
    {split: images found}; a one-line TargetError when it cannot work."""
    if spec.synthetic:
        return {}
    sizes = {}
    for split in ("train", "test"):
        items, classes, _ = (_folder_items if spec.format == "imagefolder" else _hf_items)(
            spec, split)
        if len(classes) < 2:
            raise _err(spec, f"{len(classes)} class(es) found: a target needs at least two "
                       "(imagefolder: one sub-folder per class)")
        if not items:
            raise _err(spec, f"the {split} split holds no images")
        sizes[split] = len(items)
    return sizes


def load_user_split(spec: TargetSpec, image_size: int, split: str, n: int) -> TargetSplit:
    """At most n decoded images of a user target's split (a fixed random subset if more)."""
    if spec.format == "imagefolder":
        items, classes, bad = _folder_items(spec, split)
    else:
        items, classes, bad = _hf_items(spec, split)
    if len(classes) < 2:
        raise _err(spec, f"{len(classes)} class(es): a target needs at least two")
    items = [items[i] for i in _take(len(items), n)]
    images, labels = [], []
    for _, ref, label in items:
        if isinstance(ref, (str, Path)):
            try:
                data = Path(ref).read_bytes()
            except OSError:
                data = None
        else:
            data = ref
        image = decode_image(data, image_size)
        if image is None:
            bad += 1
            continue
        images.append(image)
        labels.append(label)
    if not images:
        raise _err(spec, f"no readable image in the {split} split ({bad} bad)")
    return TargetSplit(torch.from_numpy(np.stack(images)),
                       torch.tensor(labels, dtype=torch.int64), classes, bad)


def load_target_split(data_cfg: DataConfig, image_size: int, target, split: str,
                      n: int) -> TargetSplit:
    """A target split by name or spec: the synthetic world's, or the user's own set."""
    spec = target if isinstance(target, TargetSpec) else parse_target(target)
    if spec.synthetic:
        from data.pretrain import build_target_split

        x, y, names = build_target_split(data_cfg, image_size, spec.name, split, n)
        return TargetSplit(x, y, list(names), 0)
    return load_user_split(spec, image_size, split, n)


def num_classes(data_cfg: DataConfig, image_size: int, target) -> int:
    """Classes of a target without rendering or decoding an image."""
    spec = target if isinstance(target, TargetSpec) else parse_target(target)
    if spec.synthetic:
        from data.pretrain import world_for

        return len(world_for(data_cfg, image_size).target_classes(spec.name)[1])
    if spec.format == "imagefolder":
        return len(_folder_items(spec, "train")[1])
    return len(_hf_items(spec, "train")[1])


def train_class_counts(data_cfg: DataConfig, image_size: int, target, n: int
                       ) -> tuple[list[int], int]:
    """(images per class of the train split transfer loads with a cap of n, images of
    that split without the cap), without rendering or decoding an image: what bounds the
    k of k-shot probes at sweep time. A synthetic split is balanced (image j has class
    j mod C) and as large as asked; a user split is its listed files (a file that will not
    decode lowers a count at transfer time, where `fewshot` checks again)."""
    spec = target if isinstance(target, TargetSpec) else parse_target(target)
    if spec.synthetic:
        count = num_classes(data_cfg, image_size, spec)
        return [n // count + (c < n % count) for c in range(count)], n
    items, names, _ = (_folder_items if spec.format == "imagefolder" else _hf_items)(
        spec, "train")
    labels = np.asarray([items[i][2] for i in _take(len(items), n)], dtype=np.int64)
    return np.bincount(labels, minlength=len(names)).tolist(), len(items)
