"""The `finetune` protocol: the paper's full fine-tuning of a pretrained trunk on a target.

The hashtag head is replaced by one for the target's classes and every weight trains (the
head alone with `transfer.finetune.freeze_trunk`), with the schedule of `transfer.finetune`
(the recipe fields of `optim`), under the run's own
sharding strategy and precision, in the pretraining engine's one loop
(`scaling.engine.Trainer`, given the labelled set, the model, the schedule and the
checkpoint folder `transfer/finetune/<target>/checkpoints/`): a killed fine-tune resumes
from its newest verified checkpoint, at another world size where the strategy reshards,
with the same fp16 skip limit, per-step divergence check and finite-weight check as
pretraining. Checkpoints are removed once the result file is written.
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
from models.registry import Trunk
from scaling import dist, recipe
from scaling.probe import topk
from scaling.strategies.base import Strategy, autocast

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
    cfg.data.resample = "natural"  # every labelled image equally often
    return cfg


def finetune(config: RunConfig, run_dir: Path, env: dist.DistEnv, target: str, train,
             test) -> dict:
    """Collective. Fine-tunes the trunk of `run_dir` on `train` through the engine's one
    loop (a `Trainer` given the labelled set, the trunk with its new head, the fine-tuning
    schedule and its own checkpoint folder), evaluates on `test`; returns (on every rank)
    top1, top5, `correct` per test image and the schedule used. A signal stops it after a
    checkpoint with `TransferStopped`."""
    from scaling.engine import Trainer
    from scaling.final import load_trunk

    cfg = finetune_config(config)
    classes = len(train.classes)
    root = run_dir / "transfer" / "finetune" / target / "checkpoints"
    model = load_trunk(run_dir, seed=cfg.seed + 1, num_classes=classes)
    if config.transfer.finetune.freeze_trunk:
        model = cast(Trunk, model).freeze_trunk()
    trainer = Trainer(cfg, env, run_dir,
                      dataset=LabelledSet(train.images, train.labels, classes),
                      model=model.train(),
                      ckpt_root=root, records=False, optim_field="transfer.finetune")
    phase = trainer.fit()
    if phase != "done":
        raise TransferStopped(phase)
    ft = trainer.config.optim
    out = evaluate(trainer.strategy, trainer.config, env, test.images, test.labels, classes)
    if env.is_main:
        shutil.rmtree(root.parent, ignore_errors=True)
    dist.barrier(env)
    losses = list(trainer.losses)
    out.update(lr=ft.lr_per_256 * ft.global_batch / 256, global_batch=ft.global_batch,
               images_seen=trainer.total_steps * ft.global_batch, steps=trainer.total_steps,
               resumed_from_step=trainer.start_step,
               final_loss=float(np.mean(losses)) if losses else None,
               strategy=trainer.config.shard.strategy, precision=trainer.config.precision,
               skipped_steps=trainer.skipped)
    return out


@torch.no_grad()
def evaluate(strategy: Strategy, cfg: RunConfig, env: dist.DistEnv, images: torch.Tensor,
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
