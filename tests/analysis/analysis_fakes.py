"""Writes a fabricated sweep folder (the files the engine writes), with accuracies drawn from a
known log-linear law, so analysis can be tested without training anything."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import yaml


def true_a(width: int, vocab) -> float:
    return 20.0 + 3.0 * math.log2(width) + (4.0 if vocab == "all" else 0.0)


def true_b(width: int, vocab) -> float:
    return 5.0 + width / 4


def floor(width: int) -> float:
    return 10.0 + width / 8


def _run_id(width, images, vocab, seed) -> str:
    return f"w{width}-n{images}-v{vocab}-s{seed}"


def _config(run_id, width, images, vocab, seed, targets) -> dict:
    return {
        "schema_version": 1, "name": run_id, "seed": seed, "precision": "fp32",
        "model": {"arch": "resnext", "depth": 11, "stages": 3, "cardinality": 4,
                  "width_per_group": width, "base_width": 16, "stem": "small",
                  "image_size": 32},
        "data": {"source": "synthetic", "images": images, "vocab": vocab,
                 "resample": "natural", "label_noise": 0.0},
        "optim": {"global_batch": 64, "lr_per_256": 0.1, "images_seen": 10 * images},
        "shard": {"strategy": "ddp"}, "resources": {"nodes": 1},
        "transfer": {"targets": list(targets), "protocols": ["linear"]},
    }


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def make_sweep(root: Path, name: str = "fake", widths=(4, 16), vocabs=(1000, "all"),
               images=(1_000, 10_000, 100_000), seeds=(0, 1, 2),
               targets=("fine", "coarse"), noise: float = 0.5, problems: bool = True,
               rng_seed: int = 0) -> Path:
    """Write ``root/name/`` like `scaling sweep` + finished runs would.

    Done runs: top1 = true_a + true_b * log10(images) + N(0, noise) (target 'coarse' adds
    10 points). With ``problems``, three more runs at 1M images (width widths[0], vocab
    vocabs[0]): seed 0 failed in training (no transfer file), seed 1 is running its
    transfer with a truncated transfer JSON and no provenance, seed 2 never started (no
    state.json).
    """
    rng = np.random.default_rng(rng_seed)
    sweep = root / name
    (sweep / "runs").mkdir(parents=True)
    (sweep / "sweep.yaml").write_text(yaml.safe_dump({
        "name": name, "base": "configs/base-cpu.yaml",
        "axes": {"model.width_per_group": list(widths), "data.vocab": list(vocabs),
                 "optim.lr_per_256": [0.1]},
        "zip": [{"data.images": list(images)}], "seeds": list(seeds)}))
    manifest = []

    def add(width, n, vocab, seed):
        run_id = _run_id(width, n, vocab, seed)
        run = sweep / "runs" / run_id
        run.mkdir()
        (run / "config.yaml").write_text(
            yaml.safe_dump(_config(run_id, width, n, vocab, seed, targets)))
        params = 1000 * width ** 2
        manifest.append({"run_id": run_id, "config_hash": f"h{len(manifest):04d}",
                         "model.width_per_group": width, "data.images": n, "data.vocab": vocab,
                         "optim.lr_per_256": 0.1, "seed": seed, "params": params,
                         "flops_per_image": 2.0 * params, "pretrain_flops": 6.0 * params * n * 10})
        return run

    for width in widths:
        for vocab in vocabs:
            for n in images:
                for seed in seeds:
                    run = add(width, n, vocab, seed)
                    _write_json(run / "state.json", {
                        "schema_version": 1, "train": "done", "transfer": "done",
                        "attempts": 1, "images_seen": 10 * n, "error": None,
                        "heartbeat": "2025-01-01T00:00:00+00:00", "job": "123_4",
                        "host": "node1"})
                    _write_json(run / "provenance.json", {
                        "schema_version": 1, "git_sha": "abc1234", "versions": {},
                        "host": "node1", "slurm_job_id": "123", "start": None, "end": None})
                    for target in targets:
                        mean = true_a(width, vocab) + true_b(width, vocab) * math.log10(n)
                        mean += 10.0 if target == "coarse" else 0.0
                        top1 = float(mean + rng.normal(0, noise))
                        fl = floor(width) + (10.0 if target == "coarse" else 0.0)
                        _write_json(run / "transfer" / f"{target}__linear.json", {
                            "schema_version": 1, "target": target, "protocol": "linear",
                            "top1": top1, "top5": min(100.0, top1 + 15),
                            "floor_top1": float(fl + rng.normal(0, 0.2)),
                            "floor_top5": fl + 15, "n_train": 400, "n_test": 400,
                            "num_classes": 20})
                    with open(run / "metrics.jsonl", "w") as f:
                        for step in range(3):
                            f.write(json.dumps({"step": step, "images_seen": 64 * step,
                                                "loss": 3.0 - step, "lr": 0.1}) + "\n")
    if problems:
        w, v = widths[0], vocabs[0]
        failed = add(w, 1_000_000, v, 0)
        _write_json(failed / "state.json", {
            "schema_version": 1, "train": "failed", "transfer": "pending", "attempts": 3,
            "images_seen": 5000, "error": "RuntimeError: CUDA out of memory",
            "heartbeat": "2025-01-01T00:00:00+00:00", "job": "123_9", "host": "node2"})
        running = add(w, 1_000_000, v, 1)
        _write_json(running / "state.json", {
            "schema_version": 1, "train": "done", "transfer": "running", "attempts": 1,
            "images_seen": 10_000_000, "error": None,
            "heartbeat": "2025-01-01T00:00:00+00:00", "job": "123_10", "host": "node3"})
        (running / "transfer").mkdir()
        (running / "transfer" / "fine__linear.json").write_text('{"schema_version": 1, "top1": 4')
        add(w, 1_000_000, v, 2)  # never started: config only
    keys = list(manifest[0])
    lines = [",".join(keys)] + [",".join(str(m[k]) for k in keys) for m in manifest]
    (sweep / "manifest.csv").write_text("\n".join(lines) + "\n")
    return sweep
