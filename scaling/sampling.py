"""sampling.json: a run's expected resampling figures (data/sampling_stats.py), written
once at train start by rank 0 and by `scaling data sampling` for runs that lack it.

The figures follow from the run's config alone (its pretraining set, `data.resample`, and
the stream length total steps x global batch), so the file is no part of the config or its
hash; a resumed run keeps the file it has.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from contract.config import RunConfig
from contract.runfolder import SAMPLING_FILE, write_json
from scaling import recipe

log = logging.getLogger(__name__)


def stream_draws(config: RunConfig) -> int:
    """Set positions the run's pretraining stream draws: total steps x global batch."""
    return recipe.total_steps(config.optim) * config.optim.global_batch


def sampling_payload(config: RunConfig, pset=None) -> dict:
    """sampling.json's content for `config` (its pretraining set built unless given)."""
    from data import build_pretrain_set
    from data.sampling_stats import sampling_stats

    if pset is None:
        pset = build_pretrain_set(config.data, config.model.image_size)
    stats = sampling_stats(pset, stream_draws(config), config.data.resample)
    return {**stats, "images_seen": int(config.optim.images_seen),
            "global_batch": int(config.optim.global_batch)}


def write_sampling(run_dir: Path, config: RunConfig, pset=None,
                   force: bool = False) -> Optional[Path]:
    """Write run_dir/sampling.json unless it exists (or `force`); the path written, or
    None when it was kept."""
    path = Path(run_dir) / SAMPLING_FILE
    if path.is_file() and not force:
        return None
    write_json(path, sampling_payload(config, pset))
    return path


def _run_folders(path: Path) -> list[Path]:
    """A run folder (holds config.yaml) as itself; a sweep folder as its run folders."""
    from contract.errors import ConfigError
    from contract.runfolder import SWEEP_MARKER, list_runs, require_sweep

    if (path / SWEEP_MARKER).is_file():
        return [r.path for r in list_runs(require_sweep(path)) if not r.missing]
    if (path / "config.yaml").is_file():
        return [path]
    raise ConfigError(f"{path} is neither a run folder (no config.yaml) nor a sweep folder "
                      f"(no {SWEEP_MARKER}): give a run folder or a folder made by "
                      "`scaling sweep`")


def backfill(paths: list[Path], overwrite: bool = False) -> dict[str, list[Path]]:
    """sampling.json for every run under `paths` (run or sweep folders) that lacks it (all
    of them with `overwrite`); {"written": [...], "kept": [...]} run folders. Runs sharing
    a data section and stream length share one computation."""
    from contract.config import load_run_config

    runs = [run for p in paths for run in _run_folders(Path(p))]
    done: dict[tuple, dict] = {}
    out: dict[str, list[Path]] = {"written": [], "kept": []}
    for run in runs:
        path = run / SAMPLING_FILE
        if path.is_file() and not overwrite:
            out["kept"].append(run)
            continue
        config = load_run_config(run / "config.yaml")
        key = (repr(config.data), config.model.image_size, stream_draws(config),
               config.optim.images_seen, config.optim.global_batch)
        if key not in done:
            done[key] = sampling_payload(config)
        write_json(path, done[key])
        out["written"].append(run)
    return out
