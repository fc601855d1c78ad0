"""Run under torchrun: a few training steps per (strategy, precision) cell, in one process
group, through the engine's own step (scaling.engine.forward_backward). Prints one JSON
line per cell on rank 0: {"cell", "ok", "losses", "skipped", "memory" (every rank's
memory_report after step 1's backward), "per_backward" (rank 0's after each micro-batch of
step 1), "error"}.

    python -m torch.distributed.run --standalone --nproc_per_node=2 \\
        tests/scaling/matrix_worker.py --cells ddp:fp32 fsdp2:bf16 ... [--steps 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from engine_helpers import TINY  # noqa: E402
from scaling import dist, recipe  # noqa: E402
from scaling.config import RunConfig, from_dict  # noqa: E402
from scaling.engine import forward_backward  # noqa: E402
from scaling.memory import LiveTensorTracker, estimate, profile_config  # noqa: E402
from scaling.strategies import get_strategy, policy  # noqa: E402


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
    from data import ResumableLoader, build_pretrain_set
    from models import create_model

    config = cell_config(cell, env.world_size, env.device.type)
    pset = build_pretrain_set(config.data, config.model.image_size)
    torch.manual_seed(config.seed)
    model = policy.prepare(create_model(config.model.arch, num_classes=pset.num_classes,
                                        **recipe.model_kwargs(config)), config)
    strategy = get_strategy(config.shard.strategy)(config, env)
    strategy.wrap(model, lambda m: recipe.make_optimizer(m, config.optim))
    loader = ResumableLoader(pset, config.optim.global_batch, env.rank, env.world_size,
                             config.seed)
    per_rank = config.optim.global_batch // env.world_size
    losses, skipped, memory, per_backward = [], 0, None, []
    backward = strategy.backward

    def backward_then_measure(loss):  # what a rank holds after each micro-batch, step 1
        backward(loss)
        if len(losses) == 1:
            per_backward.append(strategy.memory_report())

    strategy.backward = backward_then_measure
    tracker = None
    if track:  # live tensor bytes, as `scaling train` with SCALING_TRACK_MEMORY=1
        tracker = LiveTensorTracker()
        for tensors in strategy.state_tensors().values():
            tracker.add_existing(t for t in tensors if isinstance(t, torch.Tensor))
    for step in range(steps):
        with tracker if tracker is not None else contextlib.nullcontext():
            images, targets = loader.next_batch()
            x = recipe.memory_format(recipe.augment(recipe.to_input(images, env.device),
                                                    config.seed, step, env.rank * per_rank,
                                                    config.optim.global_batch), True)
            loss = forward_backward(strategy, config, x, targets.to(env.device),
                                    config.optim.micro_batch or per_rank, per_rank, env.device)
            del x
            if step == 1:  # after backward, before the step: every rank's held state
                memory = _gather(strategy.memory_report(), env)
            skipped += not strategy.step()
        losses.append(dist.all_reduce_mean(float(loss), env))
    out = {"losses": losses, "skipped": skipped, "memory": memory,
           "per_backward": per_backward}
    if tracker is not None:
        out["peak_live_bytes"] = _gather(tracker.peak, env)
        out["estimate_bytes"] = estimate(profile_config(config, pset.num_classes), config,
                                         env.world_size).total_bytes
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
