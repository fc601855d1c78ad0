"""Fabricated sweep folders (the files the engine writes), with accuracies drawn from known
laws, so analysis can be tested and benchmarked without training anything.

Used by tests/analysis and bench/bench_analysis.py; not imported by the package itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import yaml

PEAK_FLOPS = 1e13
"""Peak FLOP/s of the fabricated device (for MFU)."""

TARGET_OFFSET = {"fine": 0.0, "coarse": 10.0, "novel": -5.0}
PROTOCOL_OFFSET = {"linear": 0.0, "finetune": 3.0}
RESAMPLE_GAIN = {"natural": 0.0, "sqrt": 5.0, "uniform": 4.0}
NOISE_COST = 8.0
"""Points lost per unit of label noise (0.25 -> 2 points, as the paper reports)."""


def true_a(width: int, vocab) -> float:
    return 20.0 + 3.0 * math.log2(width) + (4.0 if vocab == "all" else 0.0)


def true_b(width: int, vocab) -> float:
    return 5.0 + width / 4


def true_top1(width, vocab, images, target="fine", protocol="linear", resample="natural",
              label_noise=0.0) -> float:
    """The noiseless top-1 (%) of a run: log-linear in images per width and vocabulary."""
    return (true_a(width, vocab) + true_b(width, vocab) * math.log10(images)
            + TARGET_OFFSET.get(target, 5.0) + PROTOCOL_OFFSET.get(protocol, 0.0)
            + RESAMPLE_GAIN.get(resample, 0.0) - NOISE_COST * label_noise)


def saturate(top1: float, ceiling: float) -> float:
    """`top1` bent smoothly under `ceiling`: ceiling x tanh(top1 / ceiling), so the law is
    its log-linear self well below the ceiling (2% lower at a quarter of it, 8% at half)
    and never reaches it, as accuracies must not (paper-scale fabricated sweeps pass 100%
    otherwise)."""
    return ceiling * math.tanh(top1 / ceiling)


def floor(width: int) -> float:
    return 10.0 + width / 8


def achieved_flops(width: int) -> float:
    """Training FLOP/s of the fabricated device for a width (wider models use it better)."""
    return 1e12 * (0.2 + 0.1 * math.log2(width))


def _run_id(width, images, vocab, seed, resample="natural", label_noise=0.0,
            unit: str = "s") -> str:
    # as `scaling sweep` spells them: run ids are folder names of [A-Za-z0-9._+-] only
    run_id = f"w{width}-n{images}-v{str(vocab).replace(':', '-')}-{unit}{seed}"
    if resample != "natural":
        run_id += f"-r{resample}"
    if label_noise:
        run_id += f"-ln{label_noise}"
    return run_id


def _config(run_id, width, images, vocab, seed, targets, protocols, resample,
            label_noise, world) -> dict:
    return {
        "schema_version": 1, "name": run_id, "seed": seed, "precision": "fp32",
        "model": {"arch": "resnext", "depth": 11, "stages": 3, "cardinality": 4,
                  "width_per_group": width, "base_width": 16, "stem": "small",
                  "image_size": 32},
        "data": {"source": "synthetic", "seed": world, "images": images, "vocab": vocab,
                 "resample": resample, "label_noise": label_noise,
                 "cache": images * 3 * 32 * 32 <= 2**30},  # a valid config at any size
        "optim": {"global_batch": 64, "lr_per_256": 0.1, "images_seen": 10 * images},
        "shard": {"strategy": "ddp"}, "resources": {"nodes": 1, "devices_per_node": 1},
        "transfer": {"targets": list(targets), "protocols": list(protocols)},
    }


class _WorldEffect:
    """One fabricated world's deviation from the generator's effects (see `make_sweep`)."""

    def __init__(self, level, slope, resample, finetune, noise):
        self.level, self.slope, self.resample = level, slope, resample
        self.finetune, self.noise = finetune, noise

    def shift(self, width, images, protocol, resample, label_noise) -> float:
        return (self.level + self.slope[width] * math.log10(images)
                + self.resample.get(resample, 0.0)
                + (self.finetune if protocol == "finetune" else 0.0)
                - self.noise * label_noise)


def _world_effect(rng, widths, sd: float) -> _WorldEffect:
    draw = rng.standard_normal(4 + len(widths) + len(RESAMPLE_GAIN))
    slope = {w: sd / 2 * float(d) for w, d in zip(widths, draw[4:])}
    resample = {k: (sd * float(d) if k != "natural" else 0.0)
                for k, d in zip(RESAMPLE_GAIN, draw[4 + len(widths):])}
    return _WorldEffect(sd * float(draw[0]), slope, resample, sd * float(draw[1]),
                        NOISE_COST * sd / 2 * float(draw[2]))


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


# long by design: every knob of a real sweep's layout in one writer
def make_sweep(root: Path, name: str = "fake", widths=(4, 16), vocabs=(1000, "all"),  # noqa: C901
               images=(1_000, 10_000, 100_000), seeds=(0, 1, 2),
               targets=("fine", "coarse"), protocols=("linear",), noise: float = 0.5,
               problems: bool = True, ablations: bool = False, rng_seed: int = 0,
               ceiling: float | None = None, world: int = 0,
               replicates: int | None = None, worlds_from: int = 100,
               world_sd: float = 0.0) -> Path:
    """Write ``root/name/`` like `scaling sweep` + finished runs would.

    Done runs: top1 = `true_top1` + N(0, noise), with ``images_seen = 10 * images``,
    ``params = 1000 * width**2``, forward FLOPs per image ``2 * params`` and
    ``pretrain_flops = 3 * flops_per_image * images_seen`` (as `scaling sweep` computes
    it); metrics.jsonl logs throughput at `achieved_flops`. With ``ablations``, runs at
    the widest width, largest size and first vocabulary also vary ``data.resample``
    (sqrt, uniform) and ``data.label_noise`` (0.1, 0.25). With ``problems``, three more
    runs at 10x the largest size (1M images by default; width widths[0], vocab vocabs[0]):
    seed 0 failed in training (no transfer file), seed 1 is running its transfer with a
    truncated transfer JSON and no provenance, seed 2 never started (no state.json). With
    ``ceiling`` (a top-1 %), every noiseless accuracy is `saturate`d under it, for sweeps
    too large for the log-linear law to stay an accuracy (the benches' 10M images).
    Every run is on synthetic world ``world`` (``data.seed``, set sweep-wide).

    With ``replicates`` (a count), the sweep is a replicate sweep (`scaling sweep`'s
    ``replicates: {worlds_from, count}``): replicate r trains on world ``worlds_from + r``
    with seed r (``seeds`` and ``world`` are not used; run ids end in ``-r<r>``). Each
    world then draws its own random effect: a level shift and a deviation of every
    effect (the slope b of each width, each resampling gain, fine-tuning's gain, the
    label-noise cost per unit), each N(0, ``world_sd``) (b: N(0, ``world_sd`` / 2)), on
    top of the per-run noise; with ``world_sd=0`` every world is the same world. The world
    draws come from their own stream, so the per-run noise is the same for any
    ``world_sd``: the generator-level effects are the constants above.
    """
    rng = np.random.default_rng(rng_seed)
    root = Path(root)
    sweep = root / name
    (sweep / "runs").mkdir(parents=True)
    if replicates is not None:
        seeds = tuple(range(replicates))
    spec = {"name": name, "base": "configs/base-cpu.yaml", "set": {"data.seed": world},
            "axes": {"model.width_per_group": list(widths), "data.vocab": list(vocabs),
                     "optim.lr_per_256": [0.1]},
            "zip": [{"data.images": list(images)}], "seeds": list(seeds)}
    if replicates is not None:
        del spec["set"], spec["seeds"]
        spec["replicates"] = {"worlds_from": worlds_from, "count": replicates}
    world_rng = np.random.default_rng([rng_seed, 1])
    effects = {s: _world_effect(world_rng, widths, world_sd if replicates else 0.0)
               for s in seeds}

    def world_of(seed):
        return worlds_from + seed if replicates is not None else world
    if ablations:
        spec["grids"] = [{"axes": {"data.resample": ["natural", "sqrt", "uniform"]}},
                         {"axes": {"data.label_noise": [0.0, 0.1, 0.25]}}]
    (sweep / "sweep.yaml").write_text(yaml.safe_dump(spec))
    manifest: list[dict[str, object]] = []

    def add(width, n, vocab, seed, resample="natural", label_noise=0.0):
        run_id = _run_id(width, n, vocab, seed, resample, label_noise,
                         "s" if replicates is None else "r")
        run = sweep / "runs" / run_id
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump(_config(
            run_id, width, n, vocab, seed, targets, protocols, resample, label_noise,
            world_of(seed))))
        params = 1000 * width ** 2
        row = {"run_id": run_id, "config_hash": f"h{len(manifest):04d}",
               "model.width_per_group": width, "data.images": n, "data.vocab": vocab,
               "optim.lr_per_256": 0.1, ("seed" if replicates is None else "replicate"): seed}
        if ablations:
            row.update({"data.resample": resample, "data.label_noise": label_noise})
        row.update({"params": params, "flops_per_image": 2.0 * params,
                    "pretrain_flops": 3 * 2.0 * params * n * 10, "nodes_x_devices": "1x1"})
        manifest.append(row)
        return run

    def finish(width, n, vocab, seed, resample="natural", label_noise=0.0):
        run = add(width, n, vocab, seed, resample, label_noise)
        _write_json(run / "state.json", {
            "schema_version": 1, "train": "done", "transfer": "done", "attempts": 1,
            "images_seen": 10 * n, "error": None,
            "heartbeat": "2025-01-01T00:00:00+00:00", "job": "123_4", "host": "node1"})
        _write_json(run / "provenance.json", {
            "schema_version": 1, "git_sha": "abc1234", "versions": {}, "host": "node1",
            "slurm_job_id": "123", "start": None, "end": None})
        for target in targets:
            for protocol in protocols:
                mean = true_top1(width, vocab, n, target, protocol, resample, label_noise)
                mean += effects[seed].shift(width, n, protocol, resample, label_noise)
                if ceiling is not None:
                    mean = saturate(mean, ceiling)
                top1 = float(mean + rng.normal(0, noise))
                fl = floor(width) + TARGET_OFFSET.get(target, 5.0)
                _write_json(run / "transfer" / f"{target}__{protocol}.json", {
                    "schema_version": 1, "target": target, "protocol": protocol,
                    "top1": top1, "top5": min(100.0, top1 + 15),
                    "floor_top1": float(fl + rng.normal(0, 0.2)), "floor_top5": fl + 15,
                    "n_train": 400, "n_test": 400, "num_classes": 20})
        fpi = 2.0 * 1000 * width ** 2
        flops = achieved_flops(width)
        ips = flops / (3 * fpi)
        with open(run / "metrics.jsonl", "w") as f:
            for step in range(3):
                jitter = 1.0 + 0.02 * rng.standard_normal()
                f.write(json.dumps({
                    "step": step, "images_seen": 64 * (step + 1), "loss": 3.0 - step, "lr": 0.1,
                    "images_per_s": ips * jitter, "tflops_per_s": flops * jitter / 1e12,
                    "mfu": flops * jitter / PEAK_FLOPS,
                    "max_mem_bytes": int(16 * 1000 * width ** 2 + 1e8),
                    "wall_s": 64 * (step + 1) / ips}) + "\n")

    for width in widths:
        for vocab in vocabs:
            for n in images:
                for seed in seeds:
                    finish(width, n, vocab, seed)
    if ablations:
        for seed in seeds:
            for resample in ("sqrt", "uniform"):
                finish(widths[-1], images[-1], vocabs[0], seed, resample=resample)
            for label_noise in (0.1, 0.25):
                finish(widths[-1], images[-1], vocabs[0], seed, label_noise=label_noise)
    if problems:
        w, v, big = widths[0], vocabs[0], 10 * max(images)
        failed = add(w, big, v, 0)
        _write_json(failed / "state.json", {
            "schema_version": 1, "train": "failed", "transfer": "pending", "attempts": 3,
            "images_seen": 5000, "error": "RuntimeError: CUDA out of memory",
            "heartbeat": "2025-01-01T00:00:00+00:00", "job": "123_9", "host": "node2"})
        running = add(w, big, v, 1)
        _write_json(running / "state.json", {
            "schema_version": 1, "train": "done", "transfer": "running", "attempts": 1,
            "images_seen": 10 * big, "error": None,
            "heartbeat": "2025-01-01T00:00:00+00:00", "job": "123_10", "host": "node3"})
        (running / "transfer").mkdir()
        (running / "transfer" / "fine__linear.json").write_text('{"schema_version": 1, "top1": 4')
        add(w, big, v, 2)  # never started: config only
    keys = list(manifest[0])
    lines = [",".join(keys)] + [",".join(str(m[k]) for k in keys) for m in manifest]
    (sweep / "manifest.csv").write_text("\n".join(lines) + "\n")
    return sweep
