"""`final/`: the one owner of a run's exported trunk, written by training and read by
transfer and fine-tuning.

    final/trunk.pt     the trunk's weights (no hashtag classifier), weights_only-loadable
    final/model.json   how to rebuild it: arch, kwargs, image_size, num_features,
                       channels_last, the hashtags of the pretraining head

Written atomically (`final.tmp/` renamed), so a run either has the whole trunk or none;
read only through `load_trunk`, which refuses non-finite weights and a trunk that does not
match its architecture, with advice that leads back to a working trunk.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import cast

import torch

from contract.config import RunConfig
from contract.errors import RunError
from contract.runfolder import read_json, write_json
from models import Trunk
from scaling import recipe


def exported(run_dir: Path) -> bool:
    """Whether `final/` holds the exported trunk (model.json and trunk.pt)."""
    return all((run_dir / "final" / name).is_file() for name in ("model.json", "trunk.pt"))


def reexport_fix(run_dir: Path) -> str:
    """The advice for a missing or refused trunk: `scaling train` exports `final/` again
    from the run's final checkpoint (scaling/engine.py: a done run without final/)."""
    return (f"run `scaling train --config {run_dir / 'config.yaml'}` to export the trunk "
            "(from the final checkpoint when training is done)")


def load_trunk(run_dir: Path, random_init: bool = False, seed: int = 0,
               num_classes: int = 1) -> torch.nn.Module:
    """Rebuild the trunk from `final/model.json`; load `final/trunk.pt` unless random_init.
    The head (`fc`, num_classes outputs) is freshly initialised either way."""
    from models import create_model

    meta = read_json(run_dir / "final" / "model.json")
    if meta is None:
        raise RunError(f"{run_dir}/final/model.json is missing: {reexport_fix(run_dir)}")
    torch.manual_seed(seed)
    model = create_model(meta["arch"], num_classes=num_classes, **meta["kwargs"])
    if not random_init:
        from scaling.checkpoint import load_tensors

        weights = load_tensors(run_dir / "final" / "trunk.pt", map_location="cpu",
                               fix=f"remove {run_dir / 'final'}, then "
                                   f"{reexport_fix(run_dir)}")
        bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(
            torch.isfinite(v).all())]
        if bad:  # a diverged trunk must never yield a published number
            raise RunError(f"{run_dir}/final/trunk.pt holds non-finite weights ({bad[0]} and "
                           f"{len(bad) - 1} more): remove {run_dir / 'final'}, then "
                           f"{reexport_fix(run_dir)}")
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or any(cast(Trunk, model).is_trunk_key(k) for k in missing):
            raise RunError(f"{run_dir}/final/trunk.pt does not match {meta['arch']}: "
                           f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


def export_final(run_dir: Path, trunk: dict, config: RunConfig, tag_names, num_features: int):
    """`final/`: consolidated trunk weights (weights_only-loadable) + how to rebuild it."""
    tmp = run_dir / "final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save({k: v.detach().cpu() for k, v in trunk.items()}, tmp / "trunk.pt")
    write_json(tmp / "model.json", {"arch": config.model.arch,
                                    "kwargs": recipe.model_kwargs(config),
                                    "image_size": config.model.image_size,
                                    "num_features": num_features,
                                    "channels_last": config.model.channels_last,
                                    "hashtags": list(tag_names)})
    final = run_dir / "final"
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def trunk_digest(run_dir: Path) -> str:
    """Short hash of final/trunk.pt (names what a feature cache was extracted from)."""
    return hashlib.sha1((run_dir / "final" / "trunk.pt").read_bytes()).hexdigest()[:12]
