"""`scaling transfer`: evaluate a finished trunk on every target x protocol of its config.

Reads `final/` (never a checkpoint), so it refuses a trunk whose train phase is not `done`.
Each result also carries the floor: the same probe on a randomly initialised trunk of the
same architecture, the baseline every figure shows.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from scaling import recipe
from scaling.config import RunConfig
from scaling.errors import RunError
from scaling.probe import linear_probe
from scaling.runfiles import (one_line, read_json, read_state, restrict_umask, update_state,
                              write_json)
from scaling.runlock import RunLock


def load_trunk(run_dir: Path, random_init: bool = False, seed: int = 0) -> torch.nn.Module:
    """Rebuild the trunk from `final/model.json`; load `final/trunk.pt` unless random_init."""
    from models import create_model

    meta = read_json(run_dir / "final" / "model.json")
    torch.manual_seed(seed)
    model = create_model(meta["arch"], num_classes=1, **meta["kwargs"])
    if not random_init:
        from scaling.checkpoint import load_tensors

        weights = load_tensors(run_dir / "final" / "trunk.pt", map_location="cpu")
        bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(
            torch.isfinite(v).all())]
        if bad:  # a diverged trunk must never yield a published number
            raise RunError(f"{run_dir}/final/trunk.pt holds non-finite weights ({bad[0]} and "
                           f"{len(bad) - 1} more): retrain the run")
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or any(not k.startswith("fc.") for k in missing):
            raise RunError(f"{run_dir}/final/trunk.pt does not match {meta['arch']}: "
                           f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


@torch.no_grad()
def extract_features(model, images: torch.Tensor, device: torch.device, batch: int = 500):
    feats = []
    for start in range(0, len(images), batch):
        x = recipe.to_input(images[start:start + batch], device)
        x = recipe.memory_format(x, True)
        feats.append(model.forward_features(x).float().cpu())
    return torch.cat(feats)


def transfer(config: RunConfig, run_dir) -> dict:
    """Probe the trunk of `run_dir` on each target; writes transfer/<target>__<protocol>.json."""
    run_dir = Path(run_dir)
    state = read_state(run_dir)
    if state["train"] != "done" or not (run_dir / "final" / "model.json").is_file():
        raise RunError(f"{run_dir.name}: train phase is {state['train']!r}, not 'done': "
                       "finish `scaling train` first (transfer never reads an unfinished trunk)")
    if state["transfer"] == "done":
        print(f"{run_dir.name}: transfer already done, nothing to do")
        return {}
    restrict_umask()
    lock = RunLock(run_dir, "transfer").acquire()  # one process per run (scaling/runlock.py)
    try:
        if read_state(run_dir)["transfer"] == "done":
            print(f"{run_dir.name}: transfer already done, nothing to do")
            return {}
        return _transfer(config, run_dir)
    finally:
        lock.release()


def _transfer(config: RunConfig, run_dir: Path) -> dict:
    from data import build_target_split

    device = torch.device("cuda" if config.resources.device != "cpu"
                          and torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(config.resources.cpus_per_rank)
    update_state(run_dir, transfer="running", error=None)
    results = {}
    try:
        trunk = load_trunk(run_dir).to(device).to(memory_format=torch.channels_last)
        floor = None
        if config.transfer.floor:
            floor = load_trunk(run_dir, random_init=True, seed=config.seed).to(device)
            floor = floor.to(memory_format=torch.channels_last)
        size = config.model.image_size
        for target in config.transfer.targets:
            start = time.perf_counter()
            tr_x, tr_y, classes = build_target_split(config.data, size, target, "train",
                                                     config.transfer.train_images)
            te_x, te_y, _ = build_target_split(config.data, size, target, "test",
                                               config.transfer.test_images)
            for protocol in config.transfer.protocols:
                out = _probe(trunk, tr_x, tr_y, te_x, te_y, len(classes), device, config.seed)
                record = {"target": target, "protocol": protocol, "top1": out["top1"],
                          "top5": out["top5"], "l2": out["l2"], "n_train": len(tr_y),
                          "n_test": len(te_y), "num_classes": len(classes)}
                if floor is not None:
                    base = _probe(floor, tr_x, tr_y, te_x, te_y, len(classes), device,
                                  config.seed)
                    record.update(floor_top1=base["top1"], floor_top5=base["top5"])
                record["wall_s"] = time.perf_counter() - start
                write_json(run_dir / "transfer" / f"{target}__{protocol}.json", record)
                results[(target, protocol)] = record
    except BaseException as exc:
        update_state(run_dir, transfer="failed", error=one_line(exc))
        raise
    update_state(run_dir, transfer="done")
    return results


def _probe(model, tr_x, tr_y, te_x, te_y, classes, device, seed) -> dict:
    train_f = extract_features(model, tr_x, device)
    test_f = extract_features(model, te_x, device)
    return linear_probe(train_f, tr_y, test_f, te_y, classes, seed=seed)
