"""`precision: auto`: bf16 autocast only where the device runs bf16 natively.

Autocast bf16 on an x86 CPU without AVX512-BF16 or AMX converts to fp32 around every kernel
and trains about 8x slower than fp32 (measured 70 against 600 images/s for paper-mini's
width-16 model on a 2-core AVX2 host; pytorch issues 86270 and 118499); a V100 or T4 has no
bf16 tensor cores either. So `auto` asks the hardware, once, where the run trains:

- CPU: bf16 when the CPU flags name `avx512_bf16` or `amx_bf16` (x86) or `bf16` (Arm),
  else fp32;
- CUDA: bf16 when `torch.cuda.is_bf16_supported()` and compute capability >= 8.0, else
  fp16 (with loss scaling) where the strategy supports it, else fp32.

`auto` is resolved at train time on the device that trains (a login node is not the
cluster), never at sweep time: the config and its hash keep `auto`, state.json records what
ran (`precision`), a resumed run keeps the precision it started with, and the results
table carries it (docs/design.md, "precision: auto").

`SCALING_NATIVE_BF16=1` or `=0` overrides the probe (tests force both answers; a user can
force either on a host the probe misjudges).
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from contract.config import PRECISIONS, support_reason
from contract.errors import ConfigError

log = logging.getLogger(__name__)

AUTO = "auto"
ENV = "SCALING_NATIVE_BF16"
X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
SLOW_BF16 = ("measured 8.5x slower than fp32 there (70 against 600 images/s, paper-mini's "
             "width-16 model on a 2-core AVX2 host)")
"""The slowdown the warnings name: the one measurement of it on these hosts."""


@dataclass(frozen=True)
class Bf16Support:
    """Whether a device runs bf16 natively, and the evidence (said in logs and warnings)."""

    native: bool
    why: str


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's feature flags (x86 `flags`, Arm `Features`); empty when unknown."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def _forced() -> Optional[Bf16Support]:
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("1", "true", "yes"):
        return Bf16Support(True, f"{ENV}={value}")
    if value in ("0", "false", "no"):
        return Bf16Support(False, f"{ENV}={value}")
    if value:
        raise ConfigError(f"{ENV}={value!r} is invalid: use 1 (bf16 is native here), 0 (it "
                          "is not) or unset it to ask the hardware")
    return None


def cpu_bf16(flags: Optional[set[str]] = None) -> Bf16Support:
    """Does this host's CPU run bf16 natively? (`flags`: the CPU flags, read when None)."""
    forced = _forced()
    if forced is not None:
        return forced
    flags = cpu_flags() if flags is None else flags
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        has = "bf16" in flags
        return Bf16Support(has, "bf16 in the CPU features" if has
                           else "no bf16 in the CPU features")
    found = [f for f in X86_BF16_FLAGS if f in flags]
    if found:
        return Bf16Support(True, f"{found[0]} in the CPU flags")
    return Bf16Support(False, "no avx512_bf16 or amx_bf16 in the CPU flags")


def cuda_bf16(device) -> Bf16Support:
    """Does this CUDA device run bf16 natively (compute capability >= 8.0)?"""
    forced = _forced()
    if forced is not None:
        return forced
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    name = torch.cuda.get_device_name(device)
    if major >= 8 and torch.cuda.is_bf16_supported():
        return Bf16Support(True, f"{name}, compute capability {major}.{minor}")
    return Bf16Support(False, f"{name}, compute capability {major}.{minor} < 8.0")


def bf16_support(device) -> Bf16Support:
    """The probe for a device (a torch.device or 'cpu' / 'cuda')."""
    kind = getattr(device, "type", str(device))
    return cuda_bf16(device) if kind == "cuda" else cpu_bf16()


def resolve(precision: str, device, strategy: str, offload: bool = False) -> tuple[str, str]:
    """(the precision to train in, why). A concrete precision is kept as it is."""
    if precision != AUTO:
        return precision, "set in the config"
    kind = getattr(device, "type", str(device))
    support = bf16_support(device)
    if support.native and not support_reason(strategy, "bf16", kind, offload):
        return "bf16", support.why
    if kind == "cuda" and not support_reason(strategy, "fp16", kind, offload):
        return "fp16", support.why
    return "fp32", support.why


def slow_bf16_warning(precision: str, device) -> Optional[str]:
    """The warning for an explicit bf16 on a device that emulates it (None otherwise)."""
    if precision != "bf16":
        return None
    support = bf16_support(device)
    if support.native:
        return None
    kind = getattr(device, "type", str(device))
    return (f"precision=bf16 on a {kind.upper()} without native bf16 ({support.why}): "
            f"autocast converts around every kernel, {SLOW_BF16}; use precision: auto (bf16 "
            "where native, else fp32" + (" or fp16" if kind == "cuda" else "") + ")")


def sweep_warning(precision: str, device: str, gpu: str) -> Optional[str]:
    """The same warning at sweep time, for the device the runs will train on: this host's
    CPU for CPU runs (the local executor runs them here), the GPU table for CUDA runs."""
    if precision != "bf16":
        return None
    if device == "cpu":
        return slow_bf16_warning(precision, "cpu")
    from scaling.gpus import GPUS

    if gpu in GPUS and not GPUS[gpu].bf16:
        return (f"precision=bf16 with resources.gpu={gpu!r}: compute capability < 8.0 has no "
                "bf16 tensor cores, so bf16 is emulated and slow; use precision: auto (fp16 "
                "with loss scaling there) or fp16")
    return None


def concrete(precision: str) -> bool:
    return precision in PRECISIONS
