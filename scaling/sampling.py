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
