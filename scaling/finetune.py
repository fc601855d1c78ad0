"""The `finetune` protocol: the paper's full fine-tuning of a pretrained trunk on a target.

The hashtag head is replaced by one for the target's classes and every weight trains, with
the schedule of `transfer.finetune` (the recipe fields of `optim`), under the run's own
sharding strategy and precision. It reuses the pretraining engine's pieces rather than
a loop of its own: the strategy (wrap / backward / step / save / load), `forward_backward`,
the resumable loader, the recipe's optimizer, schedule and augmentation, and checkpoint
folders (`transfer/finetune/<target>/checkpoints/`, the same COMPLETE-marker layout), so a
killed fine-tune resumes from its last checkpoint, at another world size where the
strategy reshards. Checkpoints are removed once the result file is written.
"""

from __future__ import annotations

import copy
import logging
import math
import shutil
from pathlib import Path
from typing import cast

import numpy as np
import torch

from contract.config import RunConfig
from contract.errors import RunError
from scaling import checkpoint, dist, recipe
from scaling.probe import topk
from scaling.signals import PREEMPT, SignalFlags, requeue_self
from scaling.strategies import get_strategy, policy
from scaling.strategies.base import autocast

log = logging.getLogger(__name__)


class TransferStopped(Exception):
    """A signal stopped fine-tuning after its checkpoint; `phase` is preempted or cancelled."""

    def __init__(self, phase: str) -> None:
        super().__init__(f"fine-tuning stopped by a signal ({phase}); rerun to resume")
        self.phase = phase


class LabelledSet:
    """A target split as the loader sees a pretraining set: images and one-hot targets."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: int) -> None:
        self._images, self._labels, self.num_classes = images, labels, classes

    def __len__(self) -> int:
        return len(self._labels)

    def images(self, positions) -> torch.Tensor:
        return self._images.index_select(0, torch.as_tensor(positions, dtype=torch.long))

    def targets(self, positions) -> torch.Tensor:
        y = self._labels.index_select(0, torch.as_tensor(positions, dtype=torch.long))
        return torch.nn.functional.one_hot(y, self.num_classes).float()


def finetune_config(config: RunConfig) -> RunConfig:
    """The run config the strategy sees while fine-tuning: optim = transfer.finetune, and
    softmax cross-entropy on one-hot labels."""
    cfg = copy.deepcopy(config)
    cfg.optim = copy.deepcopy(config.transfer.finetune)
    cfg.data.targets = "soft"
    return cfg


def finetune(config: RunConfig, run_dir: Path, env: dist.DistEnv, target: str, train,
             test) -> dict:
    """Collective. Fine-tunes the trunk of `run_dir` on `train`, evaluates on `test`;
    returns (on every rank) top1, top5, `correct` per test image and the schedule used."""
    from data import ResumableLoader
    from scaling.engine import _resolve_strategy, forward_backward
    from scaling.transfer import load_trunk

    classes = len(train.classes)
    cfg = _resolve_strategy(finetune_config(config), env, classes)
    ft, world = cfg.optim, env.world_size
    model = load_trunk(run_dir, seed=cfg.seed + 1, num_classes=classes).train()
    model = policy.prepare(model, cfg)
    strategy = get_strategy(cfg.shard.strategy)(cfg, env)
    strategy.wrap(model, lambda m: recipe.make_optimizer(m, ft))
    strategy.model = policy.maybe_compile(strategy.model, cfg)
    scheduler = recipe.make_scheduler(strategy.optimizer, ft)
    loader = ResumableLoader(LabelledSet(train.images, train.labels, classes),
                             ft.global_batch, env.rank, world, cfg.seed, "natural")
    root = run_dir / "transfer" / "finetune" / target / "checkpoints"
    start = 0
    # as the Trainer resumes: the newest checkpoint that verifies (SHA-256 of every file,
    # before anything is unpickled), one choice for all ranks
    latest = checkpoint.choose(root, env)
    if latest is not None:
        extra = checkpoint.load(latest, strategy, env)
        scheduler.load_state_dict(extra["scheduler"])
        loader.load_state_dict(extra["loader"])
        start = extra["step"]
        if env.is_main:
            log.info("%s: fine-tuning resumes at step %d", target, start)
    per_rank = ft.global_batch // world
    micro = ft.micro_batch or per_rank
    total = recipe.total_steps(ft)
    every = cfg.checkpoint.every_steps

    def extra_state(step: int) -> dict:
        return {"step": step, "scheduler": scheduler.state_dict(),
                "loader": loader.state_dict(), "world_size": world}

    flags = SignalFlags().install()
    code, losses = 0.0, []
    try:
        strategy.model.train()
        for step in range(start, total):
            images, targets = loader.next_batch()
            x = recipe.to_input(images, env.device)
            if ft.augment:
                x = recipe.augment(x, cfg.seed, step, env.rank * per_rank, ft.global_batch)
            x = recipe.memory_format(x, cfg.model.channels_last)
            y = targets.to(env.device)
            loss = forward_backward(strategy, cfg, x, y, micro, per_rank, env.device)
            strategy.step()
            scheduler.step()
            losses.append(float(loss))
            done = step + 1
            code = dist.all_reduce_max(flags.code, env)
            if code or (done % every == 0 and done < total):
                checkpoint.save(root, done, strategy, extra_state(done), env,
                                cfg.checkpoint.keep_last)
            if code:
                break
    finally:
        flags.restore()
    if code:
        if code == PREEMPT and env.is_main:
            requeue_self()
        raise TransferStopped("preempted" if code == PREEMPT else "cancelled")
    if any(not math.isfinite(v) for v in losses[-5:]):
        raise RunError(f"{target}: fine-tuning diverged (loss {losses[-1]}): lower "
                       "transfer.finetune.lr_per_256")
    out = evaluate(strategy, cfg, env, test.images, test.labels, classes)
    if env.is_main:
        shutil.rmtree(root.parent, ignore_errors=True)
    dist.barrier(env)
    out.update(lr=ft.lr_per_256 * ft.global_batch / 256, global_batch=ft.global_batch,
               images_seen=total * ft.global_batch, steps=total, resumed_from_step=start,
               final_loss=float(np.mean(losses[-10:])) if losses else None,
               strategy=cfg.shard.strategy, precision=cfg.precision)
    return out


@torch.no_grad()
def evaluate(strategy, cfg: RunConfig, env: dist.DistEnv, images: torch.Tensor,
             labels: torch.Tensor, classes: int, batch: int = 256) -> dict:
    """Top-1 / top-5 of the fine-tuned network; each rank scores an equal share (padded, so
    sharded engines run the same number of forwards on every rank), gathered everywhere."""
    strategy.model.eval()
    n, world = len(labels), env.world_size
    per = math.ceil(n / world)
    idx = torch.arange(env.rank * per, (env.rank + 1) * per).clamp_max(max(n - 1, 0))
    logits = []
    for s in range(0, per, batch):
        x = recipe.to_input(images.index_select(0, idx[s:s + batch]), env.device)
        x = recipe.memory_format(x, cfg.model.channels_last)
        with autocast(cfg, env.device):
            logits.append(strategy.model(x).float().cpu())
    mine = torch.cat(logits) if logits else torch.zeros(0, classes)
    if env.distributed:
        parts: list[torch.Tensor | None] = [None] * world
        torch.distributed.all_gather_object(parts, mine)
        mine = torch.cat(cast(list[torch.Tensor], parts))  # every rank's logits now
    mine = mine[:n]
    return {"top1": topk(mine, labels, 1), "top5": topk(mine, labels, 5),
            "correct": mine.argmax(1) == labels}
