"""Run under torchrun: a few training steps per (strategy, precision) cell, in one process
group, through the engine's own step (scaling.engine.Trainer). Prints one JSON
line per cell on rank 0: {"cell", "ok", "losses", "skipped", "memory" (every rank's
memory_report after step 1's backward), "per_backward" (rank 0's after each micro-batch of
step 1), "conv_dtypes" (the dtypes convolutions computed in: what precision really ran),
"error"}.

    python -m torch.distributed.run --standalone --nproc_per_node=2 \\
        -m tests.scaling.matrix_worker --cells ddp:fp32 fsdp2:bf16 ... [--steps 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import traceback

import torch

from contract.config import RunConfig, from_dict
from scaling import dist
from scaling.engine import Trainer
from scaling.memory import LiveTensorTracker, estimate, profile_config
from tests.helpers.engine import TINY


def cell_config(cell: str, world: int, device: str) -> RunConfig:
    name, precision, *opts = cell.split(":")
    data = json.loads(json.dumps(TINY))
    data["precision"] = precision
    data["resources"].update({"devices_per_node": world, "device": device})
    data["shard"] = {"strategy": name}
    for opt in opts:  # shard keys (zero_stage=2), or dotted: optim.micro_batch=4
        key, value = opt.split("=")
        section, key = key.split(".") if "." in key else ("shard", key)
        data[section][key] = {"true": True, "false": False}.get(value, value)
        if value.isdigit():
            data[section][key] = int(value)
    return from_dict(RunConfig, data)


def run_cell(cell: str, env, steps: int, track: bool = False) -> dict:
    """`steps` steps of the engine's own Trainer (train_step = forward_backward +
    optimizer_step); what each rank holds is read after step 1's backward, and rank 0's
    after each of its micro-batches."""
    trainer = Trainer(cell_config(cell, env.world_size, env.device.type), env)
    strategy = trainer.strategy
    losses, memory, per_backward = [], None, []
    backward = strategy.backward

    def backward_then_measure(loss):  # what a rank holds after each micro-batch, step 1
        backward(loss)
        if len(losses) == 1:
            per_backward.append(strategy.memory_report())

    strategy.backward = backward_then_measure
    conv_dtypes: set[str] = set()
    for layer in strategy.module.modules():  # hooks fire inside any wrapper (DeepSpeed's too)
        if isinstance(layer, torch.nn.Conv2d):
            layer.register_forward_hook(lambda _m, _i, out: conv_dtypes.add(str(out.dtype)))
    tracker = None
    if track:  # live tensor bytes, as `scaling train` with SCALING_TRACK_MEMORY=1
        tracker = LiveTensorTracker()
        for tensors in strategy.state_tensors().values():
            tracker.add_existing(t for t in tensors if isinstance(t, torch.Tensor))
    for step in range(steps):
        with tracker if tracker is not None else contextlib.nullcontext():
            x, y = trainer.next_batch()
            loss = trainer.forward_backward(x, y)
            del x, y
            if step == 1:  # after backward, before the step: every rank's held state
                memory = _gather(strategy.memory_report(), env)
            trainer.optimizer_step()
        losses.append(dist.all_reduce_mean(float(loss), env))
    out = {"losses": losses, "skipped": trainer.skipped, "memory": memory,
           "per_backward": per_backward, "conv_dtypes": sorted(conv_dtypes)}
    if tracker is not None:
        out["peak_live_bytes"] = _gather(tracker.peak, env)
        out["estimate_bytes"] = estimate(profile_config(trainer.config, trainer.pset.num_classes),
                                         trainer.config, env.world_size).total_bytes
    return out


def _gather(value, env) -> list:
    """`value` of every rank, in rank order."""
    if not env.distributed:
        return [value]
    out = [None] * env.world_size
    torch.distributed.all_gather_object(out, value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", nargs="+", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--track", action="store_true",
                    help="also the peak of live tensor bytes per rank, and the estimate")
    args = ap.parse_args()
    env = dist.setup(args.device)
    torch.set_num_threads(1)
    from scaling.strategies.base import ensure_process_group

    ensure_process_group(env)
    for cell in args.cells:
        try:
            out = {"cell": cell, "ok": True, **run_cell(cell, env, args.steps, args.track)}
        except Exception as exc:  # a cell failing is a measurement, not a crash
            out = {"cell": cell, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500],
                   "trace": traceback.format_exc()[-1500:]}
        if env.is_main:
            print("CELL " + json.dumps(out), flush=True)
        dist.barrier(env)
    dist.teardown()


if __name__ == "__main__":
    main()
