"""The engine's training step against a plain PyTorch loop, side by side (issue: does
`scaling train` waste time?).

Per strategy, the engine's own `Trainer.train_step` (through the strategy: autocast, loss
scaling, micro-batching, schedule) and a hand-written loop with the same model, batch,
precision, optimizer and synthetic tensors, wrapped the same way (DDP, `fully_shard`,
`deepspeed.initialize`), are timed in interleaved rounds in one process group. With
`--data`, the engine's step is also timed with the real input pipeline (`next_batch`: from
the uint8 cache, and generated on the fly) against its own tensor figure.

    python bench/bench_step.py [--nproc 1 2] [--strategies ddp fsdp2 deepspeed_z2] \
        [--rounds 7] [--steps 4] [--data]

Each rank count runs in its own torchrun process group; rank 0 prints one table and writes
bench/results/step_<nproc>rank.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

# strategy cells: (engine shard section, how the plain loop wraps the model)
CELLS: dict[str, dict[str, Any]] = {
    "ddp": {"strategy": "ddp"},
    "fsdp2": {"strategy": "fsdp2"},
    "fsdp2_zero2": {"strategy": "fsdp2", "reshard_after_forward": False},
    "deepspeed_z2": {"strategy": "deepspeed", "zero_stage": 2},
    "deepspeed_z3": {"strategy": "deepspeed", "zero_stage": 3},
}


def run_config(shard: dict, world: int, batch: int, width: int, cache: bool, precision: str):
    from contract.config import RunConfig, from_dict

    return from_dict(RunConfig, {
        "name": "bench-step", "seed": 0, "precision": precision,
        "model": {"arch": "resnext", "depth": 11, "stages": 3, "cardinality": 8,
                  "width_per_group": width, "base_width": 16, "stem": "small",
                  "image_size": 32, "channels_last": True},
        "data": {"images": 4096, "vocab": "all", "cache": cache},
        "optim": {"global_batch": batch, "images_seen": batch * 10 ** 6},
        "shard": dict(shard),
        "resources": {"devices_per_node": world, "device": "cpu", "cpus_per_rank": 1},
        "logging": {"tensorboard": False, "progress": False},
    })


def plain_loop(config, env, num_classes: int):
    """The same model, optimizer and precision as the engine, wrapped the textbook way;
    returns step(x, y)."""
    import torch

    from models import create_model
    from scaling import recipe
    from scaling.strategies.base import ensure_process_group
    from scaling.strategies.policy import blocks

    torch.manual_seed(config.seed)
    model = create_model(config.model.arch, num_classes=num_classes,
                         **recipe.model_kwargs(config))
    shard = config.shard
    if shard.strategy == "deepspeed":
        import deepspeed

        from scaling.strategies.deepspeed_zero import bucket_elements, ds_config

        ensure_process_group(env)
        opt = recipe.make_optimizer(model, config.optim)
        engine, *_ = deepspeed.initialize(
            model=model, optimizer=opt, dist_init_required=False,
            config=ds_config(config, env.world_size, bucket_elements(model)))

        def ds_step(x, y):
            loss = torch.nn.functional.cross_entropy(engine(x), y)
            engine.backward(loss)
            engine.step()
            return loss

        return ds_step
    if shard.strategy == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        ensure_process_group(env)
        mesh = init_device_mesh("cpu", (env.world_size,))
        zero3 = shard.zero_stage == 3 and shard.reshard_after_forward
        for block in blocks(model):
            fully_shard(block, mesh=mesh, reshard_after_forward=zero3)
        fully_shard(model, mesh=mesh, reshard_after_forward=False)
        net = model
    else:
        model = model.to(memory_format=torch.channels_last)
        net = (torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
               if env.distributed else model)
    opt = recipe.make_optimizer(model, config.optim)

    def step(x, y):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def worker(args) -> None:
    """Runs in every rank: builds each cell, interleaves its cases, rank 0 reports."""
    import ratio
    import torch

    from scaling import dist
    from scaling.allocator import pin_heap
    from scaling.engine import Trainer

    pin_heap()
    env = dist.setup("cpu")
    torch.set_num_threads(1)
    rows, data_rows = [], []

    def timed(fn, steps):  # images/s of the global batch, every rank in step
        return ratio.timed(fn, steps, lambda: dist.barrier(env), per_call=args.batch)

    for name in args.strategies:
        config = run_config(CELLS[name], env.world_size, args.batch, args.width, True,
                            args.precision)
        trainer = Trainer(config, env)
        per_rank = args.batch // env.world_size
        gen = torch.Generator().manual_seed(env.rank)
        x = torch.randn(per_rank, 3, 32, 32, generator=gen).contiguous(
            memory_format=torch.channels_last)
        y = torch.softmax(torch.randn(per_rank, trainer.pset.num_classes, generator=gen), 1)
        plain = plain_loop(config, env, trainer.pset.num_classes)
        cases = {"plain": timed(lambda p=plain: p(x, y), args.steps),
                 "engine": timed(lambda t=trainer: t.train_step(x, y), args.steps)}
        if args.data:
            fresh = Trainer(run_config(CELLS[name], env.world_size, args.batch, args.width,
                                       False, args.precision), env)
            cases["engine+cache"] = timed(lambda t=trainer: t.train_step(*t.next_batch()),
                                          args.steps)
            cases["engine+generate"] = timed(lambda t=fresh: t.train_step(*t.next_batch()),
                                             args.steps)
        samples = ratio.interleave(cases, args.rounds, seed=0)
        for r in ratio.ratios({k: samples[k] for k in ("plain", "engine")}, "plain",
                              {"engine": 0.97}):
            r.case = f"{name}: engine step"
            rows.append(r)
        if args.data:
            for r in ratio.ratios({k: v for k, v in samples.items() if k != "plain"},
                                  "engine", {"engine+cache": 0.95}):
                r.case = f"{name}: {r.case.split('+')[1]} (vs tensors)"
                data_rows.append(r)
    if env.is_main:
        title = (f"engine step vs plain loop: {env.world_size} rank(s), batch {args.batch}, "
                 f"width {args.width}, {args.precision}, {args.rounds} rounds x "
                 f"{args.steps} steps")
        print(ratio.table(title, rows))
        if data_rows:
            print()
            print(ratio.table("input pipeline vs synthetic tensors (the engine's step)",
                              data_rows))
        path = ratio.write(f"step_{env.world_size}rank", {
            "config": vars(args), "step": rows, "data": data_rows})
        print(f"-> {path}")
    dist.teardown()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--strategies", nargs="+", default=["ddp", "fsdp2", "deepspeed_z2"],
                    choices=sorted(CELLS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--data", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    failed = 0
    for nproc in args.nproc:
        rest = [a for a in (argv if argv is not None else sys.argv[1:])]
        rest = _drop_option(rest, "--nproc")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(Path(__file__).resolve()), "--worker", *rest]
        failed += subprocess.run(cmd, env=env).returncode != 0
    return 1 if failed else 0


def _drop_option(argv: list[str], option: str) -> list[str]:
    """argv without `option` and its values (the parent's choice of rank counts)."""
    out, skip = [], False
    for arg in argv:
        if arg == option:
            skip = True
            continue
        if skip and not arg.startswith("--"):
            continue
        skip = False
        out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
