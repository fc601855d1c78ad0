"""Registered studies: what a study fixed before its runs, and whether a sweep is one.

A study is registered by committing an entry to ``records/registry.yaml`` BEFORE any of
its runs start (`scaling register` prints the entry). The entry holds the SHA-256 of
three things a verdict depends on, so `scaling report` can tell a registered study from
an exploratory one by recomputing them:

- ``findings``: the rules (the findings config as `analysis.findings_config` loads it,
  every field with its default filled in, as canonical JSON);
- ``design``: the expanded sweep (every run's `contract.config.config_hash`, sorted by
  run id, hashed together), read from the sweep folder's ``runs/*/config.yaml``; where a
  run trains (``resources``) and how it logs are not part of a config hash;
- ``generator``: the synthetic world's defaults (`contract.world_config.WorldConfig()` as
  canonical JSON) and `contract.world_config.GENERATOR_VERSION`.

A design or rule changed after registration gives other hashes: it is a new study with
a new entry, and the old entry keeps its record. This module reads sweep folders through
the contract only (analysis never imports scaling.sweep).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from contract.config import config_hash, load_run_config
from contract.errors import ConfigError
from contract.world_config import GENERATOR_VERSION, WorldConfig

DEFAULT_REGISTRY = (Path(__file__).parent / "registry.yaml").resolve()  # -> records/
"""The repository's registry (absent in a bare install: every report is exploratory)."""

HASHES = ("findings", "design", "generator")
HASH_NAMES = {"findings": "findings rules", "design": "design", "generator":
              "generator defaults"}
ENTRY_KEYS = ("id", "date", "sweep", "worlds", "sha256", "reason")
_HEX = re.compile(r"^[0-9a-f]{64}$")


class RegistryError(ConfigError):
    """A malformed registry file: one line naming the entry, the field and the fix."""


def canonical(obj) -> str:
    """The one JSON spelling of ``obj`` that is hashed: sorted keys, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def findings_hash(findings_config=None) -> str:
    """SHA-256 of the findings rules as loaded (None: the shipped configs/findings.yaml)."""
    from analysis.findings_config import load_findings_config

    return _sha(canonical(dataclasses.asdict(load_findings_config(findings_config))))


def generator_hash() -> str:
    """SHA-256 of the synthetic world's defaults and the generator's version."""
    return _sha(canonical({"world_defaults": dataclasses.asdict(WorldConfig()),
                           "generator_version": GENERATOR_VERSION}))


def run_configs(sweep_dir: str | os.PathLike) -> dict[str, Path]:
    """run id -> config.yaml of every run folder of a sweep, by run id."""
    runs = Path(sweep_dir) / "runs"
    if not runs.is_dir():
        raise ConfigError(f"{sweep_dir} has no runs/ folder: give a sweep folder made by "
                          "`scaling sweep`")
    found = {p.name: p / "config.yaml" for p in sorted(runs.iterdir())
             if (p / "config.yaml").is_file()}
    if not found:
        raise ConfigError(f"{runs} holds no run config: expand the sweep with `scaling sweep`")
    return found


def design_hash(sweep_dir: str | os.PathLike) -> str:
    """SHA-256 of every run's config hash, sorted by run id (the expanded design)."""
    lines = [f"{run_id} {config_hash(load_run_config(path))}"
             for run_id, path in run_configs(sweep_dir).items()]
    return _sha("\n".join(lines) + "\n")


def sweep_worlds(sweep_dir: str | os.PathLike) -> list[int]:
    """The world seeds (``data.seed``) the sweep's runs use."""
    return sorted({load_run_config(p).data.seed for p in run_configs(sweep_dir).values()})


def hashes(sweep_dir: str | os.PathLike, findings_config=None) -> dict[str, str]:
    """The three hashes of a study (see the module docstring)."""
    return {"findings": findings_hash(findings_config), "design": design_hash(sweep_dir),
            "generator": generator_hash()}


# --------------------------------------------------------------------------- the registry

def _check(ok: bool, where: str, value, fix: str) -> None:
    if not ok:
        raise RegistryError(f"{where}={value!r} is invalid: {fix}")


def _entry(raw, i: int, path: Path) -> dict:
    where = f"{path} entry {i}"
    _check(isinstance(raw, dict), where, raw, "use a mapping with " + ", ".join(ENTRY_KEYS))
    for key in raw:
        if key not in ENTRY_KEYS:
            from contract.config import closest

            raise RegistryError(f"{where}: unknown field {key!r}: did you mean "
                                f"{closest(str(key), ENTRY_KEYS)!r}?")
    missing = [k for k in ENTRY_KEYS if k not in raw]
    if missing:
        raise RegistryError(f"{where} lacks {', '.join(missing)}: paste the whole entry "
                            "`scaling register` prints")
    name = f"{path} entry {raw['id']!r}" if isinstance(raw["id"], str) else where
    _check(isinstance(raw["id"], str) and raw["id"].strip() != "", f"{where}.id", raw["id"],
           "use a non-empty name")
    date = raw["date"]
    if isinstance(date, str):
        try:
            date = _dt.date.fromisoformat(date)
        except ValueError:
            date = None
    _check(isinstance(date, _dt.date), f"{name}.date", raw["date"],
           "use an ISO date, e.g. 2026-12-07")
    _check(isinstance(raw["sweep"], str) and raw["sweep"] != "", f"{name}.sweep",
           raw["sweep"], "use the sweep file's path")
    worlds = raw["worlds"]
    _check(isinstance(worlds, list) and worlds != [] and all(
        isinstance(w, int) and not isinstance(w, bool) for w in worlds), f"{name}.worlds",
        worlds, "use the list of world seeds (integers) the study runs on")
    sha = raw["sha256"]
    _check(isinstance(sha, dict) and set(sha) == set(HASHES), f"{name}.sha256", sha,
           f"use a mapping with exactly {', '.join(HASHES)}")
    for key in HASHES:
        _check(isinstance(sha[key], str) and bool(_HEX.match(sha[key])),
               f"{name}.sha256.{key}", sha[key], "use the 64 hex digits `scaling register` "
               "printed")
    _check(isinstance(raw["reason"], str) and raw["reason"].strip() != "", f"{name}.reason",
           raw["reason"], "say in one line why the study's choices were made")
    return {**raw, "date": date.isoformat()}


def load_registry(path: str | os.PathLike | None = None) -> list[dict]:
    """The entries of a registry file (None: `DEFAULT_REGISTRY`, or none when it is
    absent); a malformed file is a one-line `RegistryError`."""
    if path is None:
        if not DEFAULT_REGISTRY.is_file():
            return []
        path = DEFAULT_REGISTRY
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"registry {str(path)!r} does not exist: check the path (the "
                            "repository's is records/registry.yaml)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise RegistryError(f"{path}{line} is not valid YAML: fix the syntax") from None
    if raw is None:
        raw = []
    _check(isinstance(raw, list), str(path), type(raw).__name__,
           "the registry is a YAML list of entries (`[]` when empty)")
    entries = [_entry(e, i, path) for i, e in enumerate(raw)]
    seen: set = set()
    for entry in entries:
        if entry["id"] in seen:
            raise RegistryError(f"{path}: id {entry['id']!r} is registered twice: a changed "
                                "design or rule is a new study, give it a new id")
        seen.add(entry["id"])
    return entries


@dataclass
class Registration:
    """Whether a sweep is a registered study, and the hashes that decided it."""

    registered: bool
    hashes: dict
    id: str | None = None
    date: str | None = None
    why_not: str = ""
    registry: str | None = None
    worlds: list = field(default_factory=list)

    @property
    def line(self) -> str:
        """``registered <id> on <date>`` or ``exploratory (not registered: <why>)``."""
        if self.registered:
            return f"registered {self.id} on {self.date}"
        return f"exploratory (not registered: {self.why_not})"

    def to_dict(self) -> dict:
        return {"status": "registered" if self.registered else "exploratory",
                "line": self.line, "id": self.id, "date": self.date,
                "registry": self.registry, "sha256": dict(self.hashes)}


def registration(sweep_dir: str | os.PathLike, findings_config=None,
                 registry: str | os.PathLike | None = None) -> Registration:
    """Compare the sweep's hashes with every registry entry: registered when one entry
    has all three; otherwise exploratory, naming the hashes that differ from the closest
    entry (most hashes equal; the later one on a tie)."""
    try:
        own = hashes(sweep_dir, findings_config)
    except ConfigError as exc:  # e.g. a damaged run config: the report still renders
        return Registration(False, {}, why_not=f"the study cannot be hashed: {exc}")
    where = str(Path(registry)) if registry is not None else (
        str(DEFAULT_REGISTRY) if DEFAULT_REGISTRY.is_file() else None)
    entries = load_registry(registry)
    if where is None:
        return Registration(False, own, why_not="no registry file", registry=None)
    if not entries:
        return Registration(False, own, why_not=f"{where} has no entries", registry=where)
    best = max(reversed(entries), key=lambda e: sum(e["sha256"][k] == own[k] for k in HASHES))
    differ = [HASH_NAMES[k] for k in HASHES if best["sha256"][k] != own[k]]
    if not differ:
        return Registration(True, own, best["id"], best["date"], registry=where,
                            worlds=list(best["worlds"]))
    names = " and ".join(differ)
    verb = "hashes differ" if len(differ) > 1 else "hash differs"
    return Registration(False, own, why_not=f"{names} {verb} from entry {best['id']!r}",
                        registry=where)


def started_runs(sweep_dir: str | os.PathLike) -> list[str]:
    """Run ids of the sweep that have started (a state.json, a checkpoint or a log)."""
    started = []
    for run_id, config in run_configs(sweep_dir).items():
        run = config.parent
        if any((run / name).exists() for name in ("state.json", "checkpoints",
                                                  "metrics.jsonl", "transfer")):
            started.append(run_id)
    return started


def entry(sweep_dir: str | os.PathLike, study_id: str, reason: str, findings_config=None,
          sweep_file: str | None = None, today: _dt.date | None = None) -> dict:
    """The registry entry of a sweep that has not started (a `RegistryError` otherwise)."""
    started = started_runs(sweep_dir)
    if started:
        raise RegistryError(f"{sweep_dir}: {len(started)} run(s) already started (e.g. "
                            f"{started[0]}): register a study before any of its runs, in a "
                            "fresh sweep folder (`scaling sweep FILE --root NEW_ROOT`)")
    return {"id": study_id, "date": (today or _dt.datetime.now(_dt.timezone.utc).date()
                                     ).isoformat(),
            "sweep": sweep_file or str(sweep_dir), "worlds": sweep_worlds(sweep_dir),
            "sha256": hashes(sweep_dir, findings_config), "reason": reason}
