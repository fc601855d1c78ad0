"""`scaling train`: one run's pretraining, from config to `final/` (DESIGN.md runtime contract).

The loop is strategy-agnostic: it asks the strategy to wrap, backward and step, and leaves
sharding, precision scaling and checkpoint layout to it. All randomness after start-up is a
function of (seed, step, global sample slot), so a resumed run - even at another world
size - sees the same data and augmentation as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from pathlib import Path

import torch

from scaling import checkpoint, dist, recipe
from scaling.config import RunConfig, support_reason, to_dict, dump_yaml
from scaling.errors import ConfigError, RunError
from scaling.runfiles import (atomic_write_text, now_iso, one_line, read_state, update_state,
                              write_json)
from scaling.signals import PREEMPT, SignalFlags, requeue_self
from scaling.strategies import get_strategy, policy
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
    clean = False
    try:
        phase = _train(config, run_dir, env)
        clean = True
        return phase
    except BaseException as exc:
        if env.is_main and not isinstance(exc, KeyboardInterrupt):
            update_state(run_dir, train="failed", error=one_line(exc))
        raise
    finally:
        dist.teardown(clean)


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
    if env.is_main:  # what the source served: N = kept + dropped (no vocab tag) + corrupt
        update_state(run_dir, data={"records": config.data.images, "kept": len(pset),
                                    "dropped": pset.dropped, "corrupt": pset.corrupt})
        if pset.corrupt:
            print(f"warning: {pset.corrupt} of {config.data.images} records of "
                  f"{config.data.path} are missing or undecodable (skipped; "
                  f"data.max_corrupt_frac={config.data.max_corrupt_frac})", flush=True)
    config = _resolve_strategy(config, env, pset.num_classes)
    torch.manual_seed(config.seed)
    model = create_model(config.model.arch, num_classes=pset.num_classes,
                         **recipe.model_kwargs(config))
    model = policy.prepare(model, config)
    with torch.device("meta"):
        meta = create_model(config.model.arch, num_classes=pset.num_classes,
                            **recipe.model_kwargs(config))
    flops_per_image = forward_flops(meta, config.model.image_size)

    strategy = get_strategy(config.shard.strategy)(config, env)
    strategy.wrap(model, lambda m: recipe.make_optimizer(m, optim))
    strategy.model = policy.maybe_compile(strategy.model, config)
    scheduler = recipe.make_scheduler(strategy.optimizer, optim)
    loader = ResumableLoader(pset, optim.global_batch, env.rank, world, config.seed,
                             config.data.resample)

    ckpt_root = run_dir / "checkpoints"
    start, skipped = 0, 0
    latest = checkpoint.latest_complete(ckpt_root)
    if latest is not None:
        extra = checkpoint.load(latest, strategy, env)
        scheduler.load_state_dict(extra["scheduler"])
        loader.load_state_dict(extra["loader"])
        start, skipped = extra["step"], extra.get("skipped_steps", 0)
    tracker = _tracker(strategy)
    report_step = max(start, 1) if recipe.total_steps(optim) > 1 else 0
    consecutive_skips = 0
    logger = MetricsLogger(run_dir, config.logging.tensorboard) if env.is_main else None
    if logger:
        logger.truncate_after(start)

    per_rank = optim.global_batch // world
    micro = optim.micro_batch or per_rank
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
        with tracker if tracker is not None else contextlib.nullcontext():
            images, targets = loader.next_batch()
            x = recipe.to_input(images, env.device)
            if optim.augment:
                x = recipe.augment(x, config.seed, step, env.rank * per_rank,
                                   optim.global_batch)
            x = recipe.memory_format(x, config.model.channels_last)
            y = targets.to(env.device, non_blocking=True)
            step_loss = forward_backward(strategy, config, x, y, micro, per_rank, env.device)
            del x, y
            if step == report_step:
                write_memory_report(run_dir, strategy, config, env, pset.num_classes,
                                    tracker)
            applied = strategy.step()
        skipped += not applied
        consecutive_skips = 0 if applied else consecutive_skips + 1
        if consecutive_skips >= optim.max_skipped_steps:
            raise RunError(f"fp16 loss scaling skipped {consecutive_skips} steps in a row "
                           f"(step {step + 1}, optim.max_skipped_steps="
                           f"{optim.max_skipped_steps}): the loss overflows at every scale; "
                           "lower optim.lr_per_256 or use precision=bf16")
        scheduler.step()
        done_steps = step + 1
        loss_value = float(step_loss)
        # fp16 overflow is the loss scaler's to handle (a skipped step); anything else
        # non-finite is divergence, agreed by all ranks with the signal flags below
        diverged = not math.isfinite(loss_value) and (config.precision != "fp16" or applied)
        window_images += optim.global_batch
        window_loss += loss_value
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

        signal_code = dist.all_reduce_max(NONFINITE if diverged else flags.code, env)
        if signal_code == NONFINITE:
            raise RunError(f"the loss is not finite at step {done_steps} of {total}: training "
                           "diverged, no checkpoint or trunk was written from it; lower "
                           "optim.lr_per_256 or raise optim.warmup_frac")
        if signal_code or (done_steps % config.checkpoint.every_steps == 0 and done_steps < total):
            _check_finite_weights(strategy, env, done_steps)
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
    _check_finite_weights(strategy, env, total)
    checkpoint.save(ckpt_root, total, strategy, extra_state(total), env,
                    config.checkpoint.keep_last)
    trunk = strategy.trunk_state_dict()
    if env.is_main:
        export_final(run_dir, trunk, config, pset.tag_names, strategy.module.num_features)
        update_state(run_dir, train="done", images_seen=total * optim.global_batch)
        write_json(run_dir / "provenance.json", provenance(start_iso, now_iso()))
    dist.barrier(env)
    return "done"


NONFINITE = 3.0  # all-reduced with the signal codes (scaling/signals.py: 1, 2)


def _check_finite_weights(strategy, env: dist.DistEnv, step: int) -> None:
    """Refuse to checkpoint or export non-finite weights (each rank checks the shard it
    holds; all ranks agree, so none waits in a collective for a rank that stopped)."""
    bad = 0.0
    with torch.no_grad():
        for param in strategy.model.parameters():
            local = param.to_local() if hasattr(param, "to_local") else param
            if local.numel() and not bool(torch.isfinite(local).all()):
                bad = 1.0
                break
    if dist.all_reduce_max(bad, env):
        raise RunError(f"the weights are not finite at step {step}: training diverged, no "
                       "checkpoint or trunk was written from it; lower optim.lr_per_256 or "
                       "raise optim.warmup_frac")


def forward_backward(strategy, config: RunConfig, x: torch.Tensor, y: torch.Tensor,
                     micro: int, per_rank: int, device: torch.device) -> torch.Tensor:
    """One step's forward and backward over the rank's micro-batches; the rank's loss.

    Each micro-batch's loss is scaled by micro / per-rank batch, so accumulated gradients
    equal those of the whole per-rank batch and the global batch is exact at any world size.
    """
    accum = per_rank // micro
    step_loss = torch.zeros((), device=device)
    for i in range(accum):
        part = slice(i * micro, (i + 1) * micro)
        with strategy.no_sync(sync=i == accum - 1):
            with autocast(config, device):
                logits = strategy.model(x[part])
            loss = recipe.loss_fn(logits, y[part], config.data.targets) * (micro / per_rank)
            strategy.backward(loss)
        step_loss += loss.detach()
    return step_loss


def _resolve_strategy(config: RunConfig, env: dist.DistEnv, num_classes: int) -> RunConfig:
    """Refuse an unsupported cell once the device is known; resolve `auto` at this world
    size (a sweep normally resolves it already, with nodes x devices)."""
    import copy

    from scaling import memory

    device = env.device.type
    if config.shard.strategy == "auto":
        config = copy.deepcopy(config)
        config.resources.device = device
        plan = memory.choose(memory.profile_config(config, num_classes), config,
                             max_nodes=config.resources.nodes)
        config.shard.strategy = plan.strategy
        for key, value in plan.shard.items():
            setattr(config.shard, key, value)
        if env.is_main:
            print(f"shard.strategy=auto -> {plan.strategy} {plan.shard}", flush=True)
    reason = support_reason(config.shard.strategy, config.precision, device,
                            config.shard.offload)
    if reason:
        raise ConfigError(f"shard.strategy={config.shard.strategy!r} with precision="
                          f"{config.precision!r} on {device} is unsupported: {reason}")
    return config


def _tracker(strategy):
    """A live-tensor tracker (scaling/memory.py) when SCALING_TRACK_MEMORY=1: tests and
    benchmarks hold the estimator to it; it costs a Python call per op, so it is opt-in."""
    if os.environ.get("SCALING_TRACK_MEMORY") != "1":
        return None
    from scaling.memory import LiveTensorTracker

    tracker = LiveTensorTracker()
    held = strategy.state_tensors() if hasattr(strategy, "state_tensors") else {}
    for tensors in held.values():
        tracker.add_existing(t for t in tensors if isinstance(t, torch.Tensor))
    return tracker


def write_memory_report(run_dir: Path, strategy, config: RunConfig, env: dist.DistEnv,
                        num_classes: int, tracker) -> None:
    """`memory.json`: per rank, the bytes of parameters, gradients and optimizer state held
    (after backward, before the optimizer step: the moment all three exist), the tracked
    peak of live tensors when tracking, and the estimator's figures for this run."""
    from scaling import memory

    report = strategy.memory_report()
    if tracker is not None:
        report["peak_live_bytes"] = tracker.peak
    reports = [report]
    if env.distributed:
        reports = [None] * env.world_size
        torch.distributed.all_gather_object(reports, report)
    if env.is_main:
        est = memory.estimate(memory.profile_config(config, num_classes), config,
                              env.world_size)
        write_json(run_dir / "memory.json", {"schema_version": 1,
                                             "strategy": config.shard.strategy,
                                             "world_size": env.world_size,
                                             "per_rank": reports, "estimate": est.as_dict()})


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
