"""Run under torchrun: a few training steps per (strategy, precision) cell, in one process
group, through the engine's own step (scaling.engine.Trainer.train_step). Prints one JSON
line per cell on rank 0: {"cell", "ok", "losses", "skipped", "memory", "error"}.

    python -m torch.distributed.run --standalone --nproc_per_node=2 \\
        tests/scaling/matrix_worker.py --cells ddp:fp32 fsdp2:bf16 ... [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from engine_helpers import TINY  # noqa: E402
from scaling import dist  # noqa: E402
from scaling.config import RunConfig, from_dict  # noqa: E402
from scaling.engine import Trainer  # noqa: E402


def cell_config(cell: str, world: int, device: str) -> RunConfig:
    name, precision, *opts = cell.split(":")
    data = json.loads(json.dumps(TINY))
    data["precision"] = precision
    data["resources"].update({"devices_per_node": world, "device": device})
    data["shard"] = {"strategy": name}
    for opt in opts:  # e.g. zero_stage=2, reshard_after_forward=false
        key, value = opt.split("=")
        data["shard"][key] = {"true": True, "false": False}.get(value, value)
        if value.isdigit():
            data["shard"][key] = int(value)
    return from_dict(RunConfig, data)


def run_cell(cell: str, env, steps: int) -> dict:
    """`steps` steps of the engine's own Trainer.train_step (memory read after the second
    backward, before its optimizer step)."""
    trainer = Trainer(cell_config(cell, env.world_size, env.device.type), env)
    losses, memory = [], None
    for step in range(steps):
        x, y = trainer.next_batch()
        if step == 1:
            loss = trainer.forward_backward(x, y)
            memory = trainer.strategy.memory_report()
            trainer.optimizer_step()
        else:
            loss = trainer.train_step(x, y)
        losses.append(dist.all_reduce_mean(float(loss), env))
    return {"losses": losses, "skipped": trainer.skipped, "memory": memory}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", nargs="+", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    env = dist.setup(args.device)
    torch.set_num_threads(1)
    from scaling.strategies.base import ensure_process_group

    ensure_process_group(env)
    for cell in args.cells:
        try:
            out = {"cell": cell, "ok": True, **run_cell(cell, env, args.steps)}
        except Exception as exc:  # a cell failing is a measurement, not a crash
            out = {"cell": cell, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500],
                   "trace": traceback.format_exc()[-1500:]}
        if env.is_main:
            print("CELL " + json.dumps(out), flush=True)
        dist.barrier(env)
    dist.teardown()


if __name__ == "__main__":
    main()
