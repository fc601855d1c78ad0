"""Engine throughput and MFU per strategy, through the real `scaling train` path.

    python bench/bench_engine.py [--strategies ddp fsdp2 ...] [--nproc 2] [--device cpu]
        [--precision fp32] [--model tiny|resnext101_32x8d] [--batch 16] [--steps 10]
        [--image_size 16] [--json OUT.json]

Each strategy row (a stage row of the strategy table, contract/strategies.py, e.g.
`deepspeed_z2`) trains a fresh run for --steps steps; the table reports the median
images/s, TFLOP/s and MFU (docs/design.md definition) of the logged steps after the first two,
and the most-loaded rank's parameter + gradient + optimizer bytes relative to ddp and to
the row's ideal (each component whole or / world as the table says, sizes from ddp).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from contract.strategies import TABLE, ideal_bytes, rows  # noqa: E402

SHARDS = dict(rows())
MODELS: dict[str, dict[str, Any]] = {
    "tiny": {"arch": "resnext", "depth": 11, "stages": 3, "cardinality": 4,
             "width_per_group": 4, "base_width": 16, "stem": "small"},
    "resnext101_32x8d": {"arch": "resnext101_32x8d", "stem": "imagenet"},
}


def run_one(name: str, a, root: Path) -> dict:
    config = {"name": name, "precision": a.precision,
              "model": {**MODELS[a.model], "image_size": a.image_size},
              "data": {"images": max(256, a.batch * 4), "vocab": 1000 if a.model != "tiny" else 40,
                       "cache": a.model == "tiny"},
              "optim": {"global_batch": a.batch, "images_seen": a.batch * a.steps},
              "shard": SHARDS[name],
              "resources": {"device": a.device, "devices_per_node": a.nproc,
                            "cpus_per_rank": a.threads},
              "checkpoint": {"every_steps": 10 ** 6, "keep_last": 1},
              "logging": {"every_steps": 1, "tensorboard": False, "progress": False}}
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    cli = ["-m", "scaling.cli", "train", "--config", str(run / "config.yaml")]
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={a.nproc}", *cli] if a.nproc > 1 else [sys.executable, *cli])
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "Error" in ln] or proc.stderr.splitlines()
        return {"strategy": name, "ok": False, "error": (lines[-1] if lines else "?")[:200]}
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()][2:]
    per_rank = json.loads((run / "memory.json").read_text())["per_rank"]
    mem = max(per_rank, key=lambda m: m["param_bytes"] + m["grad_bytes"] + m["optim_bytes"])
    return {"strategy": name, "ok": True,
            "images_per_s": statistics.median(r["images_per_s"] for r in records),
            "tflops_per_s": statistics.median(r["tflops_per_s"] for r in records),
            "mfu": statistics.median(r["mfu"] for r in records),
            "max_mem_bytes": max(r["max_mem_bytes"] for r in records),
            "state_bytes": mem["param_bytes"] + mem["grad_bytes"] + mem["optim_bytes"],
            "param_bytes": mem["param_bytes"], "grad_bytes": mem["grad_bytes"],
            "optim_bytes": mem["optim_bytes"],
            "loss": records[-1]["loss"] if records else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", nargs="+", default=list(SHARDS), choices=list(SHARDS))
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--model", default="tiny", choices=sorted(MODELS))
    ap.add_argument("--image_size", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.strategies:
            rows.append(run_one(name, a, Path(tmp)))
    ddp = next((r for r in rows if r["strategy"] == "ddp" and r["ok"]), None)
    print(f"engine, {a.model} {a.image_size}px, {a.precision}, batch {a.batch}, "
          f"{a.nproc} rank(s) on {a.device}")
    print(f"{'strategy':>14s} {'img/s':>9s} {'TFLOP/s':>8s} {'MFU':>6s} {'state/ddp':>9s} "
          f"{'/ideal':>7s}")
    for r in rows:
        if not r["ok"]:
            print(f"{r['strategy']:>14s} FAILED: {r['error']}")
            continue
        rel = ideal = "-"
        if ddp:
            rel = f"{r['state_bytes'] / ddp['state_bytes']:.2f}"
            shard = SHARDS[r["strategy"]]
            mem = TABLE[shard["strategy"]].memory(shard.get("zero_stage", 3))
            full = {"params": ddp["param_bytes"], "grads": ddp["grad_bytes"],
                    "optim": ddp["optim_bytes"]}
            r["ideal_ratio"] = r["state_bytes"] / ideal_bytes(mem, full, a.nproc)
            ideal = f"{r['ideal_ratio']:.3f}"
        print(f"{r['strategy']:>14s} {r['images_per_s']:9.1f} {r['tflops_per_s']:8.3f} "
              f"{r['mfu']:6.3f} {rel:>9s} {ideal:>7s}")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
