"""`scaling train`: one run's pretraining, from config to `final/` (DESIGN.md runtime contract).

The loop is strategy-agnostic: it asks the strategy to wrap, backward and step, and leaves
sharding, precision scaling and checkpoint layout to it. All randomness after start-up is a
function of (seed, step, global sample slot), so a resumed run - even at another world
size - sees the same data and augmentation as an uninterrupted one.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from scaling import checkpoint, dist, recipe
from scaling.config import RunConfig, to_dict, dump_yaml
from scaling.runfiles import (atomic_write_text, now_iso, one_line, read_state, update_state,
                              write_json)
from scaling.signals import PREEMPT, SignalFlags, requeue_self
from scaling.strategies import get_strategy
from scaling.strategies.base import autocast
from scaling.telemetry import MetricsLogger, max_mem_bytes, peak_flops, provenance


def train(config: RunConfig, run_dir) -> str:
    """Train one run in `run_dir`; returns the final train phase (`done` on success)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if read_state(run_dir)["train"] == "done":
        print(f"{run_dir.name}: train already done, nothing to do")
        return "done"
    env = dist.setup(config.resources.device)
    try:
        return _train(config, run_dir, env)
    except BaseException as exc:
        if env.is_main and not isinstance(exc, KeyboardInterrupt):
            update_state(run_dir, train="failed", error=one_line(exc))
        raise
    finally:
        dist.teardown()


def _train(config: RunConfig, run_dir: Path, env: dist.DistEnv) -> str:
    from data import ResumableLoader, build_pretrain_set
    from models import create_model, forward_flops

    start_iso = now_iso()
    if env.is_main:
        state = read_state(run_dir)
        update_state(run_dir, train="running", attempts=state["attempts"] + 1, error=None)
        write_json(run_dir / "provenance.json", provenance(start_iso))
        if not (run_dir / "config.yaml").exists():
            atomic_write_text(run_dir / "config.yaml", dump_yaml(to_dict(config)))
    if env.device.type == "cpu":
        torch.set_num_threads(config.resources.cpus_per_rank)
    flags = SignalFlags().install()

    optim, world = config.optim, env.world_size
    pset = build_pretrain_set(config.data, config.model.image_size)
    torch.manual_seed(config.seed)
    model = create_model(config.model.arch, num_classes=pset.num_classes,
                         **recipe.model_kwargs(config))
    if config.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    with torch.device("meta"):
        meta = create_model(config.model.arch, num_classes=pset.num_classes,
                            **recipe.model_kwargs(config))
    flops_per_image = forward_flops(meta, config.model.image_size)

    strategy = get_strategy(config.shard.strategy)(config, env)
    strategy.wrap(model, lambda m: recipe.make_optimizer(m, optim))
    scheduler = recipe.make_scheduler(strategy.optimizer, optim)
    loader = ResumableLoader(pset, optim.global_batch, env.rank, world, config.seed,
                             config.data.resample)

    ckpt_root = run_dir / "checkpoints"
    start, skipped = 0, 0
    latest = checkpoint.latest_complete(ckpt_root)
    if latest is not None:
        extra = strategy.load(latest)
        scheduler.load_state_dict(extra["scheduler"])
        loader.load_state_dict(extra["loader"])
        start, skipped = extra["step"], extra.get("skipped_steps", 0)
    logger = MetricsLogger(run_dir, config.logging.tensorboard) if env.is_main else None
    if logger:
        logger.truncate_after(start)

    per_rank = optim.global_batch // world
    micro = optim.micro_batch or per_rank
    accum = per_rank // micro
    total = recipe.total_steps(optim)
    peak = peak_flops(env.device, config.precision)
    bar = None
    if env.is_main and config.logging.progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, desc=config.name, unit="step", mininterval=2,
                   dynamic_ncols=True)

    def extra_state(step: int) -> dict:
        return {"step": step, "scheduler": scheduler.state_dict(),
                "loader": loader.state_dict(), "skipped_steps": skipped,
                "world_size": world}

    window_start, window_images, window_loss, window_steps = time.perf_counter(), 0, 0.0, 0
    signal_code = 0.0
    wall0 = time.perf_counter()
    strategy.model.train()
    for step in range(start, total):
        images, targets = loader.next_batch()
        x = recipe.to_input(images, env.device)
        if optim.augment:
            x = recipe.augment(x, config.seed, step, env.rank * per_rank, optim.global_batch)
        x = recipe.memory_format(x, config.model.channels_last)
        y = targets.to(env.device, non_blocking=True)
        step_loss = torch.zeros((), device=env.device)
        for i in range(accum):
            part = slice(i * micro, (i + 1) * micro)
            with strategy.no_sync(sync=i == accum - 1):
                with autocast(config, env.device):
                    logits = strategy.model(x[part])
                loss = recipe.loss_fn(logits, y[part], config.data.targets) * (micro / per_rank)
                strategy.backward(loss)
            step_loss += loss.detach()
        if not strategy.step():
            skipped += 1
        scheduler.step()
        done_steps = step + 1
        window_images += optim.global_batch
        window_loss += float(step_loss)
        window_steps += 1
        if bar:
            bar.update(1)

        if done_steps % config.logging.every_steps == 0 or done_steps == total:
            loss_mean = dist.all_reduce_mean(window_loss / window_steps, env)
            elapsed = time.perf_counter() - window_start
            ips = window_images / max(elapsed, 1e-9)
            tflops = 3 * flops_per_image * ips / 1e12
            if logger:
                logger.log({"step": done_steps, "images_seen": done_steps * optim.global_batch,
                            "loss": loss_mean, "lr": scheduler.get_last_lr()[0],
                            "images_per_s": ips, "tflops_per_s": tflops,
                            "mfu": tflops * 1e12 / peak, "max_mem_bytes": max_mem_bytes(env.device),
                            "wall_s": time.perf_counter() - wall0, "skipped_steps": skipped})
                update_state(run_dir, images_seen=done_steps * optim.global_batch)
                if bar:
                    bar.set_postfix(loss=f"{loss_mean:.3f}", img_s=f"{ips:.0f}")
            window_start, window_images, window_loss, window_steps = time.perf_counter(), 0, 0.0, 0

        signal_code = dist.all_reduce_max(flags.code, env)
        if signal_code or (done_steps % config.checkpoint.every_steps == 0 and done_steps < total):
            checkpoint.save(ckpt_root, done_steps, strategy, extra_state(done_steps), env,
                            config.checkpoint.keep_last)
        if signal_code:
            break
    if bar:
        bar.close()
    if logger:
        logger.close()
    flags.restore()

    if signal_code:
        return _stop_on_signal(run_dir, env, signal_code, config)
    checkpoint.save(ckpt_root, total, strategy, extra_state(total), env,
                    config.checkpoint.keep_last)
    trunk = strategy.trunk_state_dict()
    if env.is_main:
        export_final(run_dir, trunk, config, pset.tag_names, strategy.module.num_features)
        update_state(run_dir, train="done", images_seen=total * optim.global_batch)
        write_json(run_dir / "provenance.json", provenance(start_iso, now_iso()))
    dist.barrier(env)
    return "done"


def _stop_on_signal(run_dir: Path, env, code: float, config: RunConfig) -> str:
    """Checkpoint is already written; decide preempted (+requeue) vs cancelled."""
    if not env.is_main:
        return "preempted" if code == PREEMPT else "cancelled"
    state = read_state(run_dir)
    if code == PREEMPT or state["train"] == "preempted":
        if state["attempts"] >= config.resources.max_attempts:
            update_state(run_dir, train="preempted",
                         error=f"preempted after {state['attempts']} attempts "
                               f"(resources.max_attempts={config.resources.max_attempts}): "
                               "not requeued")
        else:
            update_state(run_dir, train="preempted", error=None)
            if code == PREEMPT:
                requeue_self()
        return "preempted"
    update_state(run_dir, train="cancelled", error="cancelled by SIGTERM")
    return "cancelled"


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
