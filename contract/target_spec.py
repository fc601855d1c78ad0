"""Which target task a name in `transfer.targets` (or `data.supervised`) means (torch-free).

A target is one of the synthetic world's (`fine`, `coarse`, `novel`) or a labelled image set
the user points to, written either as a string or as a mapping:

    imagefolder:/data/pets          one sub-folder per class (train/ and test/ optional)
    hf:/data/flowers                a Hugging Face `datasets` folder (save_to_disk or parquet)
    {name: pets, format: imagefolder, path: /data/pets, test_fraction: 0.2}
    {name: flowers, format: hf, path: /data/flowers, image_column: img, label_column: y}

Only the spelling is checked here (config load must not touch the disk: a run config is read
on every node); `data.targets.check_target` looks at the files, at sweep time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.errors import ConfigError

SYNTHETIC = ("fine", "coarse", "novel")
FORMATS = ("imagefolder", "hf")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
_KEYS = ("name", "format", "path", "image_column", "label_column", "test_fraction")
CHOICES = ("fine, coarse, novel, imagefolder:<folder>, hf:<folder> or a mapping "
           "{name, format: imagefolder|hf, path}")


@dataclass(frozen=True)
class TargetSpec:
    name: str
    """Names the result files (`transfer/<name>__<protocol>.json`) and the feature cache."""
    format: str = "synthetic"
    """`synthetic`, `imagefolder` or `hf`."""
    path: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    test_fraction: float = 0.2
    """Share of images put in test when the set has one split only (by a hash of each
    image's name, so adding images never moves another one between splits)."""

    @property
    def synthetic(self) -> bool:
        return self.format == "synthetic"


def _bad(field: str, value: Any, fix: str) -> ConfigError:
    return ConfigError(f"{field}={value!r} is invalid: {fix}")


def _from_mapping(value: dict, field: str) -> TargetSpec:
    """The mapping form ({name, format, path, ...}), every key checked."""
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise _bad(f"{field}.{unknown[0]}", value[unknown[0]],
                   f"a target mapping takes {', '.join(_KEYS)}")
    fmt, path, name = value.get("format"), value.get("path"), value.get("name")
    if fmt not in FORMATS:
        raise _bad(f"{field}.format", fmt, f"use one of {', '.join(FORMATS)}")
    if not isinstance(path, str) or not path:
        raise _bad(f"{field}.path", path, "give the folder of the image set")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _bad(f"{field}.name", name, "use letters, digits, '.' and '-' (it names "
                   "the result files)")
    frac = value.get("test_fraction", 0.2)
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
        raise _bad(f"{field}.test_fraction", frac, "use a fraction in (0, 1)")
    for col in ("image_column", "label_column"):
        if col in value and (not isinstance(value[col], str) or not value[col]):
            raise _bad(f"{field}.{col}", value[col], "use a column name")
    return TargetSpec(name=name, format=fmt, path=path, test_fraction=float(frac),
                      image_column=value.get("image_column", "image"),
                      label_column=value.get("label_column", "label"))


def parse_target(value: Any, field: str = "transfer.targets") -> TargetSpec:
    """A TargetSpec from a config entry; a one-line ConfigError naming field, value, choices."""
    if isinstance(value, str):
        if value in SYNTHETIC:
            return TargetSpec(name=value)
        fmt, sep, path = value.partition(":")
        if not sep or fmt not in FORMATS:
            raise _bad(field, value, f"use one of {CHOICES}")
        if not path:
            raise _bad(field, value, f"give the folder after '{fmt}:'")
        name = re.sub(r"[^A-Za-z0-9.-]+", "-", Path(path.rstrip("/")).name).strip("-.")
        if not name:
            raise _bad(field, value, "the folder needs a name (its last path component)")
        spec = TargetSpec(name=name, format=fmt, path=path)
    elif isinstance(value, dict):
        spec = _from_mapping(value, field)
    else:
        raise _bad(field, value, f"use one of {CHOICES}")
    if spec.name in SYNTHETIC:
        raise _bad(field, value, f"{spec.name!r} is a synthetic target's name: give the set "
                   "another name (mapping form: name: ...)")
    return spec


def parse_targets(values: list, field: str = "transfer.targets") -> list[TargetSpec]:
    specs = [parse_target(v, field) for v in values]
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _bad(field, values, f"two targets are named {dup[0]!r}: give each its own name")
    return specs
