"""Sweep folder -> one tidy table: with `analysis.throughput` (which reuses these readers),
the only place in `analysis/` that reads run files.

Everything downstream (fits, plots, reports, notebooks) works on the DataFrame `collect`
returns, so a sweep trained on a cluster can be analysed anywhere from its small files.
Runs are read defensively: a sweep is usually looked at while some runs are still
running or have failed, so a missing or half-written file becomes a status on that run's
row, never a traceback. The one thing that does raise is a file written by a *newer*
schema: guessing at its meaning would silently give wrong numbers.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from contract import runfolder, versions
from contract.atomic import atomic_path
from contract.config import read_run_config
from contract.errors import ConfigError
from contract.runfolder import MISSING, RunEntry, is_stale, newer_schema, run_status

SCHEMA_VERSION = versions.RESULTS
"""The newest results.parquet schema this version reads (contract/versions.py)."""

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster

RESULTS_FILE = "results.parquet"
_PARQUET_KEY = b"wsl_scaling.schema_version"

CORRUPT = "corrupt"
"""Status of a row whose state, config or transfer file could not be read."""

# results column -> dotted run-config field it comes from
FIELDS = {
    "arch": "model.arch",
    "depth": "model.depth",
    "width": "model.width_per_group",
    "cardinality": "model.cardinality",
    "base_width": "model.base_width",
    "dataset_images": "data.images",
    "vocab": "data.vocab",
    "resample": "data.resample",
    "label_noise": "data.label_noise",
    "seed": "seed",
    "data_seed": "data.seed",     # the world on the synthetic source, the noise draw elsewhere
    "images_seen": "optim.images_seen",
    "supervised": "data.supervised",
}


def design_columns(df: pd.DataFrame, transfer: bool = True) -> list[str]:
    """Columns of a results table that say which run a row is: ``sweep``, the run-config
    fields, the precision training ran in and the sweep's dotted axes; with
    ``transfer=False`` the ``transfer.*`` axes are left out (what is left names the
    pretraining)."""
    dotted = [c for c in df.columns if "." in c and (transfer or not c.startswith("transfer."))]
    return [c for c in dict.fromkeys(["sweep", *FIELDS, "precision", *dotted])
            if c in df.columns]


# the fixed columns of results.parquet, in order, with their dtypes
COLUMNS = {
    "sweep": "text", "run_id": "text", "status": "text",
    "train_status": "text", "transfer_status": "text",
    "arch": "text", "depth": "Int64", "width": "Int64", "cardinality": "Int64",
    "base_width": "Int64", "params": "Int64", "flops_per_image": "float64",
    "dataset_images": "Int64", "vocab": "text", "resample": "text",
    "label_noise": "float64", "seed": "Int64", "data_seed": "Int64", "images_seen": "Int64",
    "pretrain_flops": "float64", "target": "text", "protocol": "text",
    "top1": "float64", "top5": "float64", "floor_top1": "float64", "floor_top5": "float64",
    "git_sha": "text",
    # transfer/<target>__<protocol>.json fields beyond top-1/5 (issue 12)
    "top1_dedup": "float64", "n_duplicates": "Int64", "n_train": "Int64", "n_test": "Int64",
    "num_classes": "Int64", "l2": "float64", "feature_dim": "Int64",
    "transfer_wall_s": "float64", "supervised": "text",
    "precision": "text",   # what training ran in (state.json): `auto` resolves per host
    # runs/<id>/sampling.json: what the resampling shows (expected; NaN without the file)
    "sampling_draws": "Int64", "sampling_distinct": "float64",
    "sampling_repeats": "float64", "sampling_tail_images": "Int64",
    "sampling_tail_share": "float64", "sampling_tail_distinct": "float64",
    "sampling_tail_repeats": "float64",
}
_TEXT = pd.Series(["text"]).dtype  # pandas' own string dtype ('str' in pandas 3, else object)
_METRICS = ("top1", "top5", "floor_top1", "floor_top5", "top1_dedup", "n_duplicates",
            "n_train", "n_test", "num_classes", "l2", "feature_dim")
_RENAMED = {"transfer_wall_s": "wall_s"}   # results column -> transfer file field
_MANIFEST_VALUES = ("params", "flops_per_image", "pretrain_flops")
SAMPLING_COLUMNS = tuple(c for c in COLUMNS if c.startswith("sampling_"))
"""results columns from sampling.json: `sampling_<field>` holds the file's <field>."""


class SchemaVersionError(ConfigError):
    """A file was written by a newer wsl-scaling than the one reading it."""


class CollectWarning(UserWarning):
    """A run file could not be read; the run's row carries status 'corrupt'."""


# --------------------------------------------------------------------------- file readers

def _check_version(obj: Any, path: Path, known: int) -> str | None:
    """Return a problem string for a malformed object; raise for a newer schema."""
    if not isinstance(obj, dict):
        return f"{path.name}: expected a mapping, found {type(obj).__name__}"
    version = obj.get("schema_version", 1)
    if not isinstance(version, int):
        return f"{path.name}: schema_version {version!r} is not an integer"
    newer = newer_schema(path, version, known)
    if newer:
        raise SchemaVersionError(newer)
    return None


def read_json(path: Path) -> tuple[dict | None, str | None]:
    """Read one schema-versioned JSON file as ``(data, problem)``.

    A missing file is ``(None, None)``; an unreadable one is ``(None, "name: why")``.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{path.name}: unreadable ({e.__class__.__name__})"
    except json.JSONDecodeError as e:
        return None, f"{path.name}: corrupt JSON ({e.msg} at line {e.lineno})"
    problem = _check_version(obj, path, versions.RUN_FILES)
    return (None, problem) if problem else (obj, None)


def read_yaml(path: Path) -> tuple[dict | None, str | None]:
    """Like `read_json` for a YAML file (sweep files, run configs)."""
    path = Path(path)
    try:
        obj = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{path.name}: unreadable ({e.__class__.__name__})"
    except yaml.YAMLError as e:
        return None, f"{path.name}: corrupt YAML ({str(e).splitlines()[0]})"
    problem = _check_version(obj, path, versions.RUN_CONFIG)
    return (None, problem) if problem else (obj, None)


def read_config(path: Path) -> tuple[dict | None, str | None]:
    """A run's config.yaml as ``(mapping, problem)``, judged by the contract's one reader
    (contract.config.read_run_config): a config `scaling train` or `scaling sweep` would
    refuse is a problem with the same one-line message, and its values are not used."""
    config, problem = read_yaml(path)
    if config is None:
        return None, problem
    try:
        read_run_config(config)
    except ConfigError as exc:
        return None, f"{path.name}: {exc}"
    return config, None


def read_metrics(run_dir: str | os.PathLike) -> pd.DataFrame:
    """A run's ``metrics.jsonl`` as a DataFrame (one row per logged step).

    A line that does not parse (typically the last one of a run killed mid-write) is
    skipped, so this works on running and preempted runs (contract.runfolder.read_metrics).
    """
    return pd.DataFrame(runfolder.read_metrics(run_dir))


def _dotted(config: dict | None, field: str) -> Any:
    node: Any = config
    for key in field.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# --------------------------------------------------------------------------- one sweep

def _sweep_name(sweep: Path) -> str:
    spec, _ = read_yaml(sweep / "sweep.yaml")
    name = spec.get("name") if isinstance(spec, dict) else None
    return str(name) if name else sweep.name


def _read_manifest(sweep: Path) -> pd.DataFrame:
    path = sweep / "manifest.csv"
    try:
        manifest = pd.read_csv(path)
    except FileNotFoundError:
        return pd.DataFrame({"run_id": pd.Series([], dtype=object)})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        warnings.warn(f"{path}: unreadable manifest ({e.__class__.__name__}); "
                      "reading runs/ only", CollectWarning, stacklevel=3)
        return pd.DataFrame({"run_id": pd.Series([], dtype=object)})
    if "run_id" not in manifest.columns:
        warnings.warn(f"{path}: no run_id column; reading runs/ only", CollectWarning,
                      stacklevel=3)
        return pd.DataFrame({"run_id": pd.Series([], dtype=object)})
    manifest["run_id"] = manifest["run_id"].astype(str)
    return manifest


def _runs(sweep: Path, manifest: pd.DataFrame) -> list[RunEntry]:
    """The contract's run listing (contract.runfolder.list_runs: manifest order, missing
    folders kept, then unlisted folders), each with its manifest row as pandas typed it."""
    rows = [{k: (None if _missing(v) else v) for k, v in r.items()}
            for r in manifest.to_dict("records")]
    return runfolder.list_runs(sweep, rows)


def iter_runs(sweep_dirs) -> Iterator[tuple[str, RunEntry]]:
    """(sweep name, run) for every run of every sweep folder (each folder once); a missing
    folder is an error (readers only: `collect`, which writes, asks for the sweep marker)."""
    for sweep in dict.fromkeys(Path(d).resolve() for d in sweep_dirs):
        if not sweep.is_dir():
            runfolder.require_sweep(sweep)  # the one message for a missing folder
        name = _sweep_name(sweep)
        for run in _runs(sweep, _read_manifest(sweep)):
            yield name, run


def _run_rows(sweep_name: str, run: RunEntry, axes: list[str]) -> list[dict]:
    config, config_problem = read_config(run.path / "config.yaml")
    state, state_problem = read_json(run.path / "state.json")
    provenance, _ = read_json(run.path / "provenance.json")
    problems = [p for p in (config_problem, state_problem) if p]
    sampling, sampling_problem = read_json(run.path / runfolder.SAMPLING_FILE)
    if sampling_problem:  # derived figures, not a result: a warning and NaN, row kept
        warnings.warn(f"{sweep_name}/{run.run_id}: {sampling_problem} (rewrite it with "
                      f"`scaling data sampling --overwrite {run.path}`)", CollectWarning,
                      stacklevel=3)

    train = transfer = None
    if run.missing:
        train = transfer = MISSING  # listed in manifest.csv, folder gone: kept, not dropped
    elif state is not None:
        train, transfer = state.get("train") or "pending", state.get("transfer") or "pending"
    elif state_problem is None:
        train = transfer = "pending"  # never started
    base = {
        "sweep": sweep_name, "run_id": run.run_id,
        "status": CORRUPT if problems else run_status(train, transfer),
        "train_status": train, "transfer_status": transfer,
        "git_sha": (provenance or {}).get("git_sha"),
    }
    for column, field in FIELDS.items():
        value = _dotted(config, field)
        base[column] = run.manifest.get(field) if value is None else value
    for column in _MANIFEST_VALUES:
        base[column] = run.manifest.get(column)
    base["precision"] = _precision_ran(config, state)
    for column in SAMPLING_COLUMNS:
        value = (sampling or {}).get(column[len("sampling_"):])
        base[column] = value if isinstance(value, (int, float)) and \
            not isinstance(value, bool) else None
    for field in axes:
        value = _dotted(config, field)
        base[field] = run.manifest.get(field) if value is None else value
    if base["vocab"] is not None:
        base["vocab"] = str(base["vocab"])

    rows = []
    transfer_dir = run.path / "transfer"
    files = sorted(transfer_dir.glob("*.json")) if transfer_dir.is_dir() else []
    for path in files:
        target, _, protocol = path.stem.partition("__")
        result, problem = read_json(path)
        row = dict(base, target=target, protocol=protocol or None)
        if problem:
            problems.append(problem)
            row["status"] = CORRUPT
        result = result or {}
        row["target"] = result.get("target", row["target"])
        row["protocol"] = result.get("protocol", row["protocol"])
        row.update({m: result.get(m) for m in _METRICS})
        row.update({c: result.get(f) for c, f in _RENAMED.items()})
        rows.append(row)
    for problem in problems:
        warnings.warn(f"{sweep_name}/{run.run_id}: {problem}", CollectWarning, stacklevel=4)
    return rows or [dict(base, target=None, protocol=None)]


def _precision_ran(config: dict | None, state: dict | None) -> str | None:
    """The precision training ran in: state.json's (where `auto` was resolved), else the
    config's when it names one; None while an `auto` run has not started."""
    ran = (state or {}).get("precision")
    if isinstance(ran, str) and ran:
        return ran
    configured = (config or {}).get("precision", "fp32")
    return configured if configured != "auto" else None


def check_sweep_dir(sweep: Path) -> Path:
    """Refuse (one line) a folder that is not a sweep with runs, before anything is read
    or written there: `collect` of a typo, of `/` or of someone else's folder must not
    leave a results.parquet (the contract's one test of what a sweep folder is)."""
    return runfolder.require_sweep(sweep, need_runs=True)


def _collect_one(sweep: Path) -> pd.DataFrame:
    check_sweep_dir(sweep)
    manifest = _read_manifest(sweep)
    mapped = set(FIELDS.values())
    axes = [c for c in manifest.columns if "." in c and c not in mapped]
    name = _sweep_name(sweep)
    rows = [row for run in _runs(sweep, manifest) for row in _run_rows(name, run, axes)]
    df = _typed(pd.DataFrame(rows), axes)
    if df["precision"].dropna().nunique() > 1:
        warnings.warn(f"{name}: runs trained in {precision_summary(df)} (precision: auto "
                      "resolves per host): findings pair runs of one precision; fit them "
                      "apart (by=[..., 'precision'])", CollectWarning, stacklevel=3)
    return df


def precision_summary(df: pd.DataFrame) -> str:
    """'bf16 (4 runs), fp32 (2 runs)': the precisions training ran in, by distinct run."""
    if "precision" not in df.columns or not len(df):
        return "unknown precision"
    runs = df.drop_duplicates(["sweep", "run_id"])["precision"].fillna("not yet trained")
    counts = runs.value_counts()
    return ", ".join(f"{kind} ({n} run{'s' if n != 1 else ''})"
                     for kind, n in sorted(counts.items()))


def _typed(df: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Fixed columns with fixed dtypes (so sweeps concatenate and parquet round-trips)."""
    out = pd.DataFrame(index=df.index)
    for column, dtype in COLUMNS.items():
        values = df[column] if column in df else pd.Series([None] * len(df), index=df.index)
        if dtype == "text":
            out[column] = values.map(lambda v: None if _missing(v) else str(v)).astype(_TEXT)
        else:
            out[column] = pd.to_numeric(values, errors="coerce").astype(dtype)
    for column in axes:
        values = df[column].infer_objects()
        kinds = {type(v) for v in values.dropna()}
        if len(kinds) > 1 and not kinds <= {int, float, bool}:
            # e.g. data.vocab-like axes mixing 1000 and 'all': keep them as text
            values = values.map(lambda v: None if _missing(v) else str(v))
        out[column] = values
    return out


# --------------------------------------------------------------------------- public

def collect(*sweep_dirs: str | os.PathLike, write: bool = True) -> pd.DataFrame:
    """Read one or more sweep folders into one row per run x transfer target x protocol.

    Columns are `COLUMNS` (docs/design.md's results.parquet, plus ``train_status``,
    ``transfer_status`` and ``floor_top5``) followed by every other sweep axis of the
    manifest, named by its dotted config field (e.g. ``optim.lr``). A run without transfer
    results still has one row (target NaN) so failed and pending runs stay visible.

    ``status`` is ``done`` when both phases are done; otherwise the train phase, or the
    transfer phase once training is done; ``corrupt`` when a run file could not be read
    (a `CollectWarning` names the file and the reason; see also `run_states`).

    With ``write``, each sweep's rows are written atomically to ``<sweep>/results.parquet``.
    Raises `SchemaVersionError` (one line) on a file from a newer wsl-scaling.
    """
    if not sweep_dirs:
        raise TypeError("collect() needs at least one sweep folder")
    if len(sweep_dirs) == 1 and isinstance(sweep_dirs[0], (list, tuple)):
        sweep_dirs = tuple(sweep_dirs[0])  # collect([a, b]) as collect(a, b)
    for sweep_dir in sweep_dirs:  # all checked before any is written
        check_sweep_dir(Path(sweep_dir))
    # one folder named twice (`collect S S`, `collect S ./S`) is read once: never two
    # rows for one run
    unique = list(dict.fromkeys(Path(d).resolve() for d in sweep_dirs))
    frames = []
    for sweep in unique:
        df = _collect_one(sweep)
        if write:
            write_results(df, sweep / RESULTS_FILE)
        frames.append(df)
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True, sort=False)


def write_results(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` to parquet atomically (temp file in the same folder, then os.replace),
    tagging the file with its schema version."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    table = pa.Table.from_pandas(df, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[_PARQUET_KEY] = str(SCHEMA_VERSION).encode()
    table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def load_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read a results.parquet (or the one in a sweep folder) written by `collect`."""
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    table = pq.read_table(path)
    version = int((table.schema.metadata or {}).get(_PARQUET_KEY, b"1"))
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path}: schema_version {version} is newer than this wsl-scaling reads "
            f"(<= {SCHEMA_VERSION}); upgrade wsl-scaling")
    return table.to_pandas()


def _data_count(state: dict, key: str) -> float:
    """A count of state.json's `data` section (what the run's data source served)."""
    data = state.get("data")
    value = data.get(key) if isinstance(data, dict) else None
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else math.nan


def run_states(*sweep_dirs: str | os.PathLike,
               stale_after_s: float = runfolder.STALE_AFTER_S) -> pd.DataFrame:
    """One row per run: its phases, attempts, progress, last error and liveness.

    ``data_records`` / ``corrupt_records``: the N records the run's source was asked for
    and how many of them were missing or undecodable (state.json's ``data``; NaN before
    the run started).

    ``stale`` is True for a running phase whose heartbeat is older than ``stale_after_s``
    or unreadable (the job probably died without writing a final state): the contract's
    rule (contract.runfolder.is_stale), the one `scaling status` applies. ``error`` also carries the
    reason a state, config or transfer file could not be read.
    """
    rows = []
    now = datetime.now(timezone.utc)
    for name, run in iter_runs(sweep_dirs):
        state, problem = read_json(run.path / "state.json")
        config, config_problem = read_config(run.path / "config.yaml")
        transfer_dir = run.path / "transfer"
        transfer_problems = [p for f in sorted(transfer_dir.glob("*.json"))
                             for p in [read_json(f)[1]] if p] if transfer_dir.is_dir() else []
        problems = [p for p in (problem, config_problem, *transfer_problems) if p]
        state = state or {}
        train = state.get("train") or (None if problem else "pending")
        transfer = state.get("transfer") or (None if problem else "pending")
        if run.missing:
            train = transfer = MISSING
        heartbeat = pd.to_datetime(state.get("heartbeat"), utc=True, errors="coerce")
        stale = is_stale(state, now, stale_after_s)
        rows.append({
            "sweep": name, "run_id": run.run_id,
            "status": CORRUPT if problems else run_status(train, transfer),
            "train_status": train, "transfer_status": transfer,
            "attempts": state.get("attempts"), "images_seen": state.get("images_seen"),
            "planned_images": _dotted(config, "optim.images_seen")
            or run.manifest.get("optim.images_seen"),
            "stale": stale, "heartbeat": heartbeat,
            "error": "; ".join(problems) if problems else state.get("error"),
            "job": state.get("job"), "host": state.get("host"),
            "data_records": _data_count(state, "records"),
            "corrupt_records": _data_count(state, "corrupt"),
        })
    return pd.DataFrame(rows)
