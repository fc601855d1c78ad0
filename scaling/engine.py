"""`scaling train`: one run's pretraining, from config to `final/` (docs/design.md, runtime
contract).

The loop is strategy-agnostic: it asks the strategy to wrap, backward and step, and leaves
sharding, precision scaling and checkpoint layout to it. All randomness after start-up is a
function of (seed, step, global sample slot), so a resumed run - even at another world
size - sees the same data and augmentation as an uninterrupted one.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import socket
import time
from pathlib import Path
from typing import Optional

import torch

from contract.atomic import atomic_write_text
from contract.config import PRECISIONS, RunConfig, dump_yaml, support_reason, to_dict
from contract.errors import ConfigError, RunError
from contract.retry import may_requeue
from contract.runfolder import now_iso, private_dir, read_state, update_state, write_json
from scaling import checkpoint, dist, logs, precision, recipe
from scaling.allocator import pin_heap
from scaling.final import export_final, exported
from scaling.phase import run_phase
from scaling.sampling import write_sampling
from scaling.signals import PREEMPT, SignalFlags, requeue_self
from scaling.strategies import get_strategy, policy
from scaling.strategies.base import Strategy, autocast
from scaling.telemetry import MetricsLogger, max_mem_bytes, peak_flops, provenance

log = logging.getLogger(__name__)


def train(config: RunConfig, run_dir) -> str:
    """Train one run in `run_dir` (through the one phase runner, scaling/phase.py); returns
    the final train phase (`done` on success)."""
    from scaling import runconfig

    run_dir = Path(run_dir)
    # the run's config.yaml records what runs: a command-line change is written there
    # before training, or refused when a checkpoint or the trunk depends on the old one
    rewrite = runconfig.check_train_change(run_dir, config)

    def body(env: dist.DistEnv) -> str:
        if read_state(run_dir)["train"] == "done" and env.is_main:
            log.info("%s: train is done but final/ is missing or incomplete: exporting it "
                     "again from the newest checkpoint", run_dir.name)
        if rewrite and env.is_main:
            log.info("%s", runconfig.record(run_dir, config, "train"))
        return Trainer(config, env, run_dir).fit()

    def prepare() -> None:
        private_dir(run_dir)
        pin_heap()

    return run_phase(run_dir, "train", config, body, finished=lambda: _finished(run_dir),
                     nothing="done", prepare=prepare)


def _write_sampling(run_dir: Path, config: RunConfig, pset) -> None:
    """sampling.json once per run (a resumed run keeps it); a failure is a warning, not a
    failed run: `scaling data sampling` can write it later."""
    try:
        write_sampling(run_dir, config, pset)
    except (ValueError, OSError) as exc:
        log.warning("%s: sampling.json not written (%s); write it later with `scaling data "
                    "sampling %s`", run_dir.name, exc, run_dir)


def _finished(run_dir: Path) -> bool:
    """Done and exported: a done run whose final/ was removed (a refused trunk's advice)
    resumes from its final checkpoint, where the loop has no step left, and exports."""
    return read_state(run_dir)["train"] == "done" and exported(run_dir)


class Trainer:
    """One run's training as steps (torchtitan's split): `__init__` builds the run (data,
    model, strategy, optimizer, schedule, loader), `next_batch` + `train_step` are one
    step, `fit` is the loop with its metrics window and checkpoint policy.

    The one loop of the project: pretraining builds it from the config; fine-tuning
    (scaling/finetune.py) gives what differs, the labelled set (`dataset`), the model with
    its new head (`model`), the optim section (in `config.optim`), where checkpoints go
    (`ckpt_root`), and `records=False` (the run's train-phase files: state.json,
    metrics.jsonl, memory.json, provenance.json, sampling.json and final/ are
    pretraining's), so both get the same verified collective resume, fp16 skip limit,
    per-step divergence check and finite-weight check before every checkpoint.

    Tests and benchmarks build a Trainer and call the same `train_step` that `fit` calls;
    `state_dict`/`load_state_dict` hold everything a checkpoint adds to the strategy's own
    state, so a resumed run continues exactly (data order and augmentation included).
    """

    def __init__(self, config: RunConfig, env: dist.DistEnv, run_dir: Optional[Path] = None,
                 *, dataset=None, model: Optional[torch.nn.Module] = None,
                 ckpt_root: Optional[Path] = None, records: bool = True,
                 optim_field: str = "optim"):
        from data import ResumableLoader, build_pretrain_set
        from models import create_model, forward_flops

        self.env, self.run_dir = env, Path(run_dir) if run_dir is not None else None
        self.records = records and self.run_dir is not None
        self.ckpt_root = Path(ckpt_root) if ckpt_root is not None else (
            self.run_dir / "checkpoints" if self.run_dir is not None else None)
        self.optim_field = optim_field  # what the divergence advice names
        self.start_iso = now_iso()
        if env.is_main and self.records and self.run_dir is not None:
            state = read_state(self.run_dir)
            update_state(self.run_dir, train="running", attempts=state["attempts"] + 1,
                         error=None)
            write_json(self.run_dir / "provenance.json", provenance(self.start_iso))
            if not (self.run_dir / "config.yaml").exists():
                atomic_write_text(self.run_dir / "config.yaml", dump_yaml(to_dict(config)))
        if env.device.type == "cpu":
            torch.set_num_threads(config.resources.cpus_per_rank)

        self.pset = dataset if dataset is not None else build_pretrain_set(
            config.data, config.model.image_size)
        if env.is_main and self.records and dataset is None and self.run_dir is not None:
            # what the source served: N = kept + dropped (no vocab tag) + corrupt
            pset = self.pset
            update_state(self.run_dir, data={"records": config.data.images, "kept": len(pset),
                                             "dropped": pset.dropped, "corrupt": pset.corrupt})
            if pset.corrupt:
                # within the allowed fraction: a note on stdout, where it always was
                log.info("warning: %d of %d records of %s are missing or undecodable (skipped; "
                         "data.max_corrupt_frac=%s)", pset.corrupt, config.data.images,
                         config.data.path, config.data.max_corrupt_frac)
            _write_sampling(self.run_dir, config, pset)
        config = _resolve_strategy(config, env, self.pset.num_classes,
                                   self._started_in(config))
        if env.is_main and self.records and self.run_dir is not None:
            update_state(self.run_dir, precision=config.precision)
        self.config, optim = config, config.optim
        torch.manual_seed(config.seed)
        if model is None:
            model = create_model(config.model.arch, num_classes=self.pset.num_classes,
                                 **recipe.model_kwargs(config))
        model = policy.prepare(model, config)
        with torch.device("meta"):
            meta = create_model(config.model.arch, num_classes=self.pset.num_classes,
                                **recipe.model_kwargs(config))
        self.flops_per_image = forward_flops(meta, config.model.image_size)

        self.strategy = get_strategy(config.shard.strategy)(config, env)
        self.strategy.wrap(model, lambda m: recipe.make_optimizer(m, optim))
        self.strategy.model = policy.maybe_compile(self.strategy.model, config)
        self.scheduler = recipe.make_scheduler(self.strategy.optimizer, optim)
        self.loader = ResumableLoader(self.pset, optim.global_batch, env.rank,
                                      env.world_size, config.seed, config.data.resample)
        self.per_rank = optim.global_batch // env.world_size
        self.micro = optim.micro_batch or self.per_rank
        self.total_steps = recipe.total_steps(optim)
        self.step, self.skipped, self.consecutive_skips = 0, 0, 0
        self.start_step = 0
        self.last_applied = True
        self.losses: collections.deque = collections.deque(maxlen=10)
        """The last losses (the rank's), what a fine-tune result reports as its final loss."""

    def _started_in(self, config: RunConfig) -> Optional[str]:
        """The precision `auto` resolved to when this run started, if it has a checkpoint
        to resume from (state.json `precision`); None: resolve on this device."""
        if config.precision != precision.AUTO or not self.records or self.run_dir is None:
            return None
        if self.ckpt_root is None or checkpoint.latest_complete(self.ckpt_root) is None:
            return None
        recorded = read_state(self.run_dir).get("precision")
        return recorded if recorded in PRECISIONS else None

    # ------------------------------------------------------------------ state (Stateful)
    def state_dict(self) -> dict:
        """What a checkpoint holds beside the strategy's model/optimizer state."""
        return {"step": self.step, "scheduler": self.scheduler.state_dict(),
                "loader": self.loader.state_dict(), "skipped_steps": self.skipped,
                "world_size": self.env.world_size}

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        self.loader.load_state_dict(state["loader"])
        self.step, self.skipped = state["step"], state.get("skipped_steps", 0)

    def resume(self, ckpt_root: Path) -> int:
        """Load the newest complete checkpoint under `ckpt_root` that verifies (a corrupt
        newest one is skipped, with the reason said), if any; the step to continue from.
        The step resumed from goes into state.json (`resumed_from`), so a resume and a
        restart can be told apart."""
        latest = checkpoint.choose(ckpt_root, self.env)
        if latest is not None:
            self.load_state_dict(checkpoint.load(latest, self.strategy, self.env))
        if latest is not None:  # every rank says where it resumed (multi-node logs)
            where = latest.relative_to(self.run_dir) if self.run_dir else latest.name
            log.info("wsl-scaling: rank %d on %s: resumed from %s (step %d)", self.env.rank,
                     socket.gethostname(), where, self.step, extra=logs.ALL_RANKS)
        if self.env.is_main and self.records and self.run_dir is not None:
            update_state(self.run_dir,
                         resumed_from=self.step if latest is not None else None)
            log.info("%s: %s", self.run_dir.name,
                     f"resumed from checkpoint {latest.name} at step {self.step}"
                     if latest is not None else "starting at step 0")
        return self.step

    # ------------------------------------------------------------------------ one step
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the next global batch, augmented and on the device."""
        config, env = self.config, self.env
        images, targets = self.loader.next_batch()
        x = recipe.to_input(images, env.device)
        if config.optim.augment:
            x = recipe.augment(x, config.seed, self.step, env.rank * self.per_rank,
                               config.optim.global_batch)
        x = recipe.memory_format(x, config.model.channels_last)
        return x, targets.to(env.device, non_blocking=True)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One training step on one batch: forward, backward, optimizer and schedule step;
        returns the rank's loss."""
        loss = self.forward_backward(x, y)
        self.optimizer_step()
        return loss

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward and backward over the rank's micro-batches (gradients accumulate); the
        rank's loss.

        Each micro-batch's loss is scaled by micro / per-rank batch, so accumulated
        gradients equal those of the whole per-rank batch and the global batch is exact at
        any world size."""
        strategy, config, micro, per_rank = self.strategy, self.config, self.micro, self.per_rank
        accum = per_rank // micro
        step_loss = torch.zeros((), device=self.env.device)
        for i in range(accum):
            part = slice(i * micro, (i + 1) * micro)
            with strategy.no_sync(sync=i == accum - 1):
                with autocast(config, self.env.device):
                    logits = strategy.model(x[part])
                loss = recipe.loss_fn(logits, y[part], config.data.targets) * (micro / per_rank)
                strategy.backward(loss)
            step_loss += loss.detach()
        return step_loss

    def optimizer_step(self) -> None:
        """Apply the gradients and advance the schedule. fp16 steps skipped by loss scaling
        are counted, and too many in a row fail the run."""
        applied = self.last_applied = self.strategy.step()
        self.skipped += not applied
        self.consecutive_skips = 0 if applied else self.consecutive_skips + 1
        limit = self.config.optim.max_skipped_steps
        if self.consecutive_skips >= limit:
            raise RunError(f"fp16 loss scaling skipped {self.consecutive_skips} steps in a row "
                           f"(step {self.step + 1}, {self.optim_field}.max_skipped_steps="
                           f"{limit}): the loss overflows at every scale; lower "
                           f"{self.optim_field}.lr_per_256 or use precision=bf16")
        self.scheduler.step()
        self.step += 1

    # ---------------------------------------------------------------------- the loop
    # long by design: the loop: its steps are methods, what is left is their order
    def fit(self) -> str:  # noqa: C901
        """Train from the newest checkpoint to the end of the schedule (or a signal)."""
        config, env, run_dir = self.config, self.env, self.run_dir
        assert run_dir is not None and self.ckpt_root is not None, "fit() needs the run folder"
        flags = SignalFlags().install()
        ckpt_root = self.ckpt_root
        start = self.start_step = self.resume(ckpt_root)
        saver = CheckpointPolicy(config.checkpoint.every_steps, self.total_steps)
        tracker = _tracker(self.strategy)
        report_step = max(start, 1) if self.total_steps > 1 else 0
        logger = (MetricsLogger(run_dir, config.logging.tensorboard)
                  if env.is_main and self.records else None)
        if logger:
            logger.truncate_after(start)
        window = MetricsWindow(config.optim.global_batch, self.flops_per_image,
                               peak_flops(env.device, config.precision))
        bar = None
        if env.is_main and config.logging.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=start, desc=config.name, unit="step",
                       mininterval=2, dynamic_ncols=True)

        signal_code = 0.0
        self.strategy.model.train()
        while self.step < self.total_steps:
            with tracker if tracker is not None else contextlib.nullcontext():
                x, y = self.next_batch()
                if self.step == report_step and self.records:
                    # memory is reported between backward and the optimizer step, the
                    # moment parameters, gradients and optimizer state all exist
                    loss = self.forward_backward(x, y)
                    write_memory_report(run_dir, self.strategy, config, env,
                                        self.pset.num_classes, tracker,
                                        self.flops_per_image)
                    self.optimizer_step()
                else:
                    loss = self.train_step(x, y)
                del x, y
            loss_value = float(loss)
            self.losses.append(loss_value)
            # fp16 overflow is the loss scaler's to handle (a skipped step); anything else
            # non-finite is divergence, agreed by all ranks with the signal flags below
            diverged = not math.isfinite(loss_value) and (
                config.precision != "fp16" or self.last_applied)
            window.add(loss_value)
            if bar:
                bar.update(1)
            if self.step % config.logging.every_steps == 0 or self.step == self.total_steps:
                record = window.flush(self.step, env, self.scheduler.get_last_lr()[0],
                                      self.skipped)
                if logger:
                    logger.log(record)
                    update_state(run_dir, images_seen=record["images_seen"])
                    if bar:
                        bar.set_postfix(loss=f"{record['loss']:.3f}",
                                        img_s=f"{record['images_per_s']:.0f}")
            signal_code = dist.all_reduce_max(NONFINITE if diverged else flags.code, env)
            if signal_code == NONFINITE:
                raise RunError(f"the loss is not finite at step {self.step} of "
                               f"{self.total_steps}: training diverged, no checkpoint or trunk "
                               f"was written from it; lower {self.optim_field}.lr_per_256 or "
                               f"raise {self.optim_field}.warmup_frac")
            if saver.due(self.step, signal=bool(signal_code)):
                _check_finite_weights(self.strategy, env, self.step, self.optim_field)
                checkpoint.save(ckpt_root, self.step, self.strategy, self.state_dict(), env,
                                config.checkpoint.keep_last)
            if signal_code:
                log.info("wsl-scaling: rank %d on %s: checkpoint step %d saved, stopping on %s",
                         env.rank, socket.gethostname(), self.step,
                         "SIGUSR2 (preempt)" if signal_code == PREEMPT else "SIGTERM",
                         extra=logs.ALL_RANKS)
                break
        if bar:
            bar.close()
        if logger:
            logger.close()
        flags.restore()

        if signal_code:
            if not self.records:  # fine-tuning: the transfer phase records the stop
                if signal_code == PREEMPT and env.is_main:
                    requeue_self()
                return "preempted" if signal_code == PREEMPT else "cancelled"
            return _stop_on_signal(run_dir, env, signal_code, config)
        _check_finite_weights(self.strategy, env, self.total_steps, self.optim_field)
        if not self.records:  # fine-tuning: its caller evaluates the model in memory
            dist.barrier(self.env)
            return "done"
        if start < self.total_steps:  # else it resumed from the final checkpoint itself
            checkpoint.save(ckpt_root, self.total_steps, self.strategy, self.state_dict(),
                            env, config.checkpoint.keep_last)
        trunk = self.strategy.trunk_state_dict()
        if env.is_main:
            export_final(run_dir, trunk, config, self.pset.tag_names,
                         self.strategy.module.num_features)
            update_state(run_dir, train="done",
                         images_seen=self.total_steps * config.optim.global_batch)
            write_json(run_dir / "provenance.json", provenance(self.start_iso, now_iso()))
        dist.barrier(self.env)
        return "done"


NONFINITE = 3.0  # all-reduced with the signal codes (scaling/signals.py: 1, 2)


def _check_finite_weights(strategy: Strategy, env: dist.DistEnv, step: int,
                          optim_field: str = "optim") -> None:
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
                       f"checkpoint or trunk was written from it; lower {optim_field}."
                       f"lr_per_256 or raise {optim_field}.warmup_frac")


class CheckpointPolicy:
    """When the loop saves: every `every_steps` steps before the end, and at once when a
    signal arrived (the final checkpoint is written by `fit` itself)."""

    def __init__(self, every_steps: int, total_steps: int) -> None:
        self.every_steps, self.total_steps = every_steps, total_steps

    def due(self, done_steps: int, signal: bool = False) -> bool:
        return signal or (done_steps % self.every_steps == 0 and done_steps < self.total_steps)


class MetricsWindow:
    """Losses and images since the last log line; `flush` turns them into one
    metrics.jsonl record (loss averaged over ranks, throughput over the window). MFU is
    null when the device's peak is not known or not trustworthy (scaling/telemetry.py)."""

    def __init__(self, global_batch: int, flops_per_image: int, peak: float) -> None:
        self.global_batch, self.flops_per_image, self.peak = global_batch, flops_per_image, peak
        self.wall0 = time.perf_counter()
        self._reset()

    def _reset(self) -> None:
        self.start, self.images, self.loss, self.steps = time.perf_counter(), 0, 0.0, 0

    def add(self, loss: float) -> None:
        self.images += self.global_batch
        self.loss += loss
        self.steps += 1

    def flush(self, step: int, env: dist.DistEnv, lr: float, skipped: int) -> dict:
        """Collective (the loss is averaged over ranks): every rank calls it."""
        loss = dist.all_reduce_mean(self.loss / max(self.steps, 1), env)
        ips = self.images / max(time.perf_counter() - self.start, 1e-9)
        tflops = 3 * self.flops_per_image * ips / 1e12
        record = {"step": step, "images_seen": step * self.global_batch, "loss": loss,
                  "lr": lr, "images_per_s": ips, "tflops_per_s": tflops,
                  "mfu": tflops * 1e12 / self.peak if math.isfinite(self.peak) else None,
                  "max_mem_bytes": max_mem_bytes(env.device),
                  "wall_s": time.perf_counter() - self.wall0, "skipped_steps": skipped}
        self._reset()
        return record


def _resolve_strategy(config: RunConfig, env: dist.DistEnv, num_classes: int,
                      started_in: Optional[str] = None) -> RunConfig:
    """Refuse an unsupported cell once the device is known; resolve `shard.strategy: auto`
    at this world size (a sweep normally resolves it already, with nodes x devices) and
    `precision: auto` on this device (scaling/precision.py), or to `started_in`, the
    precision a resumed run started in: one run, one numerics."""
    import copy

    from scaling import memory

    device = env.device.type
    if config.shard.strategy == "auto":
        config = copy.deepcopy(config)
        config.resources.device = device
        plan = memory.choose(memory.profile_config(config, num_classes), config,
                             max_nodes=config.resources.nodes)
        memory.apply_plan(config, plan)
        if env.is_main:
            log.info("shard.strategy=auto -> %s %s", plan.strategy, plan.shard)
    if config.precision == precision.AUTO:
        config = copy.deepcopy(config)
        if started_in:
            config.precision, why = started_in, "the precision this run started in"
        else:
            config.precision, why = precision.resolve(precision.AUTO, env.device,
                                                      config.shard.strategy,
                                                      config.shard.offload)
        if env.is_main:
            log.info("precision=auto -> %s (%s)", config.precision, why)
    else:
        _warn_once(precision.slow_bf16_warning(config.precision, env.device), env)
    reason = support_reason(config.shard.strategy, config.precision, device,
                            config.shard.offload)
    if reason:
        raise ConfigError(f"shard.strategy={config.shard.strategy!r} with precision="
                          f"{config.precision!r} on {device} is unsupported: {reason}")
    return config


_WARNED: set = set()


def _warn_once(message: Optional[str], env: dist.DistEnv) -> None:
    """A warning said once per process on rank 0 (fine-tuning resolves per target)."""
    if message and env.is_main and message not in _WARNED:
        _WARNED.add(message)
        log.warning(message)


def _tracker(strategy: Strategy):
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


def write_memory_report(run_dir: Path, strategy: Strategy, config: RunConfig, env: dist.DistEnv,
                        num_classes: int, tracker,
                        flops_per_image: Optional[int] = None) -> None:
    """`memory.json`: per rank, the bytes of parameters, gradients and optimizer state held
    (after backward, before the optimizer step: the moment all three exist), the tracked
    peak of live tensors when tracking, and the estimator's figures for this run."""
    from scaling import memory

    report = strategy.memory_report()
    if tracker is not None:
        report["peak_live_bytes"] = tracker.peak
    reports: list = [report]
    if env.distributed:
        reports = [None] * env.world_size
        torch.distributed.all_gather_object(reports, report)
    if env.is_main:
        # the trainer counted the FLOPs already: the profile does not count them again
        est = memory.estimate(memory.profile_config(config, num_classes, flops_per_image),
                              config, env.world_size)
        # write_json stamps the schema version (contract.versions.RUN_FILES)
        write_json(run_dir / "memory.json", {"strategy": config.shard.strategy,
                                             "world_size": env.world_size,
                                             "per_rank": reports, "estimate": est.as_dict()})


def _stop_on_signal(run_dir: Path, env, code: float, config: RunConfig) -> str:
    """Checkpoint is already written; decide preempted (+requeue) vs cancelled."""
    if not env.is_main:
        return "preempted" if code == PREEMPT else "cancelled"
    state = read_state(run_dir)
    if code == PREEMPT or state["train"] == "preempted":
        if not may_requeue(state["attempts"], config.resources.max_attempts):
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
