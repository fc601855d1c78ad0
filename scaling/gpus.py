"""The one table of GPU models: memory, dense peak FLOP/s and compute capability.

Estimates (scaling/memory.py: capacity, device-hours), MFU (scaling/telemetry.py: the peak
of the precision that ran) and `precision: auto`'s sweep-time warning (scaling/precision.py:
no bf16 below compute capability 8.0) all read it, by the `resources.gpu` name or by a
fragment of `torch.cuda.get_device_name()`. Peaks are NVIDIA's dense (no sparsity) figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Gpu:
    memory_gb: float
    half: float
    """bf16 / fp16 tensor-core peak (fp16 where the card has no bf16)."""
    tf32: float
    fp32: float
    capability: tuple[int, int]

    @property
    def bf16(self) -> bool:
        return self.capability >= (8, 0)


GPUS = {
    "H200": Gpu(141, 989.4e12, 494.7e12, 66.9e12, (9, 0)),
    "H100": Gpu(80, 989.4e12, 494.7e12, 66.9e12, (9, 0)),
    "A100": Gpu(80, 312e12, 156e12, 19.5e12, (8, 0)),
    "A100-40": Gpu(40, 312e12, 156e12, 19.5e12, (8, 0)),
    "L40S": Gpu(48, 362e12, 183e12, 91.6e12, (8, 9)),
    "A10": Gpu(24, 125e12, 62.5e12, 31.2e12, (8, 6)),
    "V100": Gpu(32, 125e12, 15.7e12, 15.7e12, (7, 0)),
    "T4": Gpu(16, 65e12, 8.1e12, 8.1e12, (7, 5)),
}
DEFAULT = "H100"


def by_name(name: str) -> Gpu:
    """The `resources.gpu` entry (the default card for an unknown name)."""
    return GPUS.get(name, GPUS[DEFAULT])


def by_device_name(device_name: str) -> Optional[Gpu]:
    """The entry whose name is a fragment of the CUDA device name (longest first, so
    'A100-40' is not read as 'A100'); None for a card not in the table."""
    for key in sorted(GPUS, key=len, reverse=True):
        if key.split("-")[0] in device_name and (
                "-" not in key or key.split("-")[1] in device_name):
            return GPUS[key]
    return None
