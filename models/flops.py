"""Parameter and FLOP counts, measured (never hand-typed) on the meta device."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from models.registry import create_model


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(model: torch.nn.Module, image_size: int, batch: int = 1) -> int:
    """Forward FLOPs per image (a multiply-add counts 2), by torch.utils.flop_counter."""
    device = next(model.parameters()).device
    x = torch.empty(batch, 3, image_size, image_size, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // batch


def model_stats(name: str, num_classes: int, image_size: int, **kwargs) -> dict:
    """Params and forward FLOPs/image without allocating weights (meta device: fast for 800M)."""
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, **kwargs)
    return {"params": count_params(model),
            "flops_per_image": forward_flops(model, image_size)}
