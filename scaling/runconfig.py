"""What a run folder's config.yaml records: the config its phases actually ran with.

`scaling train` / `scaling transfer` may put command-line values over the --config file
(or name another --run_dir). Before a phase starts, the run's config.yaml is compared
with the config it is about to run:

- the same: nothing to do;
- different, and nothing yet depends on the recorded config: config.yaml is rewritten
  (atomically) and, in a sweep folder, the run's manifest.csv row too (config hash,
  parameters, FLOPs, estimates), so `scaling collect` reads what ran;
- different in a way that changes results, while something depends on the recorded
  config: refused in one line naming the first difference and a fix that works. For
  training that is the sweep's own rule (`scaling.sweep.frozen_reason`: the run is done or has
  a complete checkpoint, which a resume would continue under the recorded config); for
  transfer, the trunk was trained with every non-transfer field, and result files
  already written were made with the recorded transfer section.

A change that does not change results (`resources`, `logging`: outside the config hash)
is allowed on a frozen run and not recorded, so a resume at another world size works.
"""

from __future__ import annotations

import copy
import fcntl
from pathlib import Path
from typing import Optional

from contract.atomic import atomic_write_text
from contract.config import (
    RunConfig,
    config_hash,
    dump_yaml,
    get_path,
    load_yaml,
    read_run_config,
    to_dict,
)
from contract.errors import ConfigError
from contract.runfolder import read_manifest

CONFIG = "config.yaml"


def _recorded(run_dir: Path) -> Optional[dict]:
    """The run folder's config.yaml as a resolved mapping (every field); None when absent.
    A file the reader refuses is returned as written (it then differs from any config)."""
    path = run_dir / CONFIG
    if not path.is_file():
        return None
    data = load_yaml(path)
    try:
        return to_dict(read_run_config(data))
    except ConfigError:
        return data


def _hash(data: dict) -> Optional[str]:
    try:
        return config_hash(read_run_config(data))
    except ConfigError:
        return None


def check_train_change(run_dir: Path, config: RunConfig) -> bool:
    """Before training: True when config.yaml must be rewritten with `config` (it differs
    and the run is not frozen); False when it is absent (the trainer writes it), the
    same, or differs only outside the config hash on a frozen run. ConfigError when a
    frozen run's results would change. Reads only: every rank may call it."""
    from scaling.sweep import first_difference, frozen_reason

    old, new = _recorded(run_dir), to_dict(config)
    if old is None or old == new:
        return False
    why = frozen_reason(run_dir)
    if not why:
        return True
    if _hash(old) == config_hash(config):
        return False
    fix = "train the change as a new run: add --run_dir NEW_FOLDER"
    if why != "is done":
        fix += f", or remove {run_dir / 'checkpoints'} to train this run again from step 0"
    raise ConfigError(f"run {run_dir.name} {why} and its config would change "
                      f"({first_difference(old, new)}): {fix}")


def check_transfer_change(run_dir: Path, config: RunConfig) -> bool:
    """Before transfer (the trunk is done): True when config.yaml must be rewritten with a
    changed `transfer` section no result file was made with yet. ConfigError when a field
    the trunk was trained with would change, or result files exist."""
    from scaling.sweep import first_difference

    old, new = _recorded(run_dir), to_dict(config)
    if old is None or old == new:
        return False
    old_rest = {k: v for k, v in old.items() if k != "transfer"}
    new_rest = {k: v for k, v in new.items() if k != "transfer"}
    same_trunk = _hash({**old_rest, "transfer": new["transfer"]}) == config_hash(config)
    if not same_trunk:
        raise ConfigError(f"run {run_dir.name} was trained with its config.yaml and only "
                          "transfer.* may change for transfer "
                          f"({first_difference(old_rest, new_rest)}): drop that value, or "
                          "train the change as a new run (`scaling train --run_dir "
                          "NEW_FOLDER`)")
    if old.get("transfer") == new["transfer"]:
        return False  # only resources / logging differ: nothing to record
    results = sorted(p.name for p in (run_dir / "transfer").glob("*.json"))
    if results:
        raise ConfigError(f"run {run_dir.name} has transfer results ({results[0]}"
                          f"{' and more' if len(results) > 1 else ''}) made with its "
                          f"config.yaml and it would change "
                          f"({first_difference(old, new)}): remove "
                          f"{run_dir / 'transfer'} to evaluate the run again with the new "
                          "values, or drop them")
    return True


def record(run_dir: Path, config: RunConfig, phase: str) -> Optional[str]:
    """Write `config` as the run's config.yaml (atomically) and, in a sweep folder, its
    manifest.csv row; returns the first difference it recorded (for the log)."""
    from scaling.sweep import first_difference

    old = _recorded(run_dir) or {}
    change = first_difference(old, to_dict(config))
    atomic_write_text(run_dir / CONFIG, dump_yaml(to_dict(config)))
    _update_manifest_row(run_dir, config)
    return f"{run_dir.name}: config.yaml now records the {phase} command line ({change})"


def _update_manifest_row(run_dir: Path, config: RunConfig) -> None:
    """The run's row of `<sweep>/manifest.csv` recomputed from `config` (the columns
    `scaling sweep` writes), under a lock: parallel runs may rewrite the manifest."""
    sweep = run_dir.parent.parent
    manifest = sweep / "manifest.csv"
    if run_dir.parent.name != "runs" or not manifest.is_file():
        return
    from scaling.sweep import run_estimates, write_manifest
    from scaling.walltime import Estimator

    estimates = run_estimates(copy.deepcopy(config), {}, Estimator())
    with open(sweep / "manifest.lock", "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            rows = read_manifest(manifest)
            columns = list(rows[0]) if rows else ["run_id", "config_hash"]
            row = {"run_id": run_dir.name, "config_hash": config_hash(config)}
            for column in columns:
                if "." in column or column == "seed":
                    try:
                        row[column] = get_path(to_dict(config), column)
                    except (KeyError, TypeError):
                        pass
            row.update(estimates)
            at = [i for i, r in enumerate(rows) if r.get("run_id") == run_dir.name]
            if at:
                rows[at[0]] = {**rows[at[0]], **row}
            else:
                rows.append(row)
            write_manifest(manifest, rows)
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)
