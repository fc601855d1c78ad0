"""The paper's recipe: SGD + Nesterov, linear lr scaling, warmup, step halving; 1/k soft-target
cross-entropy; flip + shift augmentation that depends only on (seed, step, global slot), so
a global batch is augmented the same way at any world size."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from contract.config import OptimConfig, RunConfig

MEAN, STD = 0.5, 0.25  # the synthetic world's pixels are centred; real data gets the same


def make_optimizer(model: torch.nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    lr = optim.lr_per_256 * optim.global_batch / 256
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=optim.momentum,
                           nesterov=optim.nesterov and optim.momentum > 0,
                           weight_decay=optim.weight_decay)


def total_steps(optim: OptimConfig) -> int:
    return max(1, optim.images_seen // optim.global_batch)


def lr_factor(step: int, optim: OptimConfig) -> float:
    """Multiplier of the base lr at `step` (0-based): linear warmup, then halving or cosine."""
    total = total_steps(optim)
    warmup = int(math.ceil(optim.warmup_frac * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if optim.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 0.5 ** min(optim.halvings, int(progress * (optim.halvings + 1)))


def make_scheduler(optimizer, optim: OptimConfig):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, optim))


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    logits = logits.float()
    if kind == "multihot":
        return F.binary_cross_entropy_with_logits(logits, targets)
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B,3,H,W) -> normalised float on the device."""
    return images.to(device, non_blocking=True).float().div_(255).sub_(MEAN).div_(STD)


def memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def augment(x: torch.Tensor, seed: int, step: int, first_slot: int, global_batch: int,
            max_shift: int = 2) -> torch.Tensor:
    """Random flip and shift (zero padding) of a rank's slice of the global batch."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    flips = torch.rand(global_batch, generator=gen)[first_slot:first_slot + len(x)] < 0.5
    shifts = torch.randint(-max_shift, max_shift + 1, (global_batch, 2),
                           generator=gen)[first_slot:first_slot + len(x)]
    x = torch.where(flips.to(x.device)[:, None, None, None], x.flip(3), x)
    b, c, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    rows = (torch.arange(h)[None, :] + max_shift - shifts[:, :1]).to(x.device)
    cols = (torch.arange(w)[None, :] + max_shift - shifts[:, 1:]).to(x.device)
    padded = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * max_shift))
    return padded.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def model_kwargs(config: RunConfig) -> dict:
    m = config.model
    return {"depth": m.depth, "stages": m.stages, "cardinality": m.cardinality,
            "width_per_group": m.width_per_group, "base_width": m.base_width, "stem": m.stem}
