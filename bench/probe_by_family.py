"""Where a finished run's `fine` probe goes wrong: in the shape family, or inside it.

    python bench/probe_by_family.py RUN_DIR [RUN_DIR ...]

Refits the run's linear probe (its chosen L2) on the cached features of
`transfer/features/` and splits the test predictions by the coarse concept (shape family)
of each `fine` class. data/README.md ("Why each effect arises") quotes it, and
records/history.md has the measurement: top-1 is about 0.94 x the share of images put in
the right family, whatever the trunk's vocabulary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def family_split(pred: np.ndarray, true: np.ndarray, family: np.ndarray) -> dict:
    """top-1, the share of predictions in the true class's family, and top-1 among those
    (percent); `family[c]` is the family of class c."""
    pred, true = np.asarray(pred), np.asarray(true)
    right_family = family[pred] == family[true]
    hits = pred == true
    return {"top1": 100.0 * hits.mean(), "family_right": 100.0 * right_family.mean(),
            "top1_given_family": 100.0 * hits.sum() / max(int(right_family.sum()), 1)}


def _split_run(run_dir: Path) -> dict:
    import torch

    from contract.config import load_run_config
    from data.pretrain import world_for
    from scaling.probe import fixed_probe

    cfg = load_run_config(run_dir / "config.yaml")
    world = world_for(cfg.data, cfg.model.image_size)
    family = world.fine_attrs[world.fine_target_concepts, 0]     # class -> shape family
    feats = {split: torch.load(run_dir / "transfer" / "features" / f"fine__trunk__{split}.pt",
                               weights_only=True)["features"] for split in ("train", "test")}
    classes = len(family)
    y_train, y_test = (torch.arange(len(feats[s])) % classes   # image j has class j mod C
                       for s in ("train", "test"))
    l2 = json.loads((run_dir / "transfer" / "fine__linear.json").read_text())["l2"]
    out = fixed_probe(feats["train"], y_train, feats["test"], y_test, classes, l2)
    return family_split(out["pred"].numpy(), y_test.numpy(), family)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished run folders with a fine probe")
    args = ap.parse_args(argv)
    print("| run | fine top-1 | family right | top-1 given the family |")
    print("|---|---|---|---|")
    for run in args.runs:
        r = _split_run(run)
        print(f"| {run.name} | {r['top1']:.1f} | {r['family_right']:.1f} | "
              f"{r['top1_given_family']:.1f} |")


if __name__ == "__main__":
    main()
