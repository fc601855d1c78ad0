"""Memory per device: an estimator (for `shard.strategy: auto` and the manifest) and the
allocation tracker the tests hold it to.

The estimate is parameters + gradients + optimizer state, as each strategy holds them at a
world size, plus activations (bytes saved for backward per image, measured by running the
model on the meta device, so nothing is allocated even for ResNeXt-101 32x48d) and the
input batch. The tracker counts the live tensor storages the process allocates (a
dispatch mode with a finalizer per storage), never RSS: RSS includes the allocator's cache,
the interpreter and libraries, none of which the estimate is about.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import asdict, dataclass
from typing import Optional

GIB = 2 ** 30
# Memory (GiB) and dense bf16 peak FLOP/s of the GPUs sweeps plan for.
GPUS = {"H200": (141, 989.4e12), "H100": (80, 989.4e12), "A100": (80, 312e12),
        "A100-40": (40, 312e12), "L40S": (48, 362e12), "A10": (24, 125e12),
        "V100": (32, 125e12)}
CPU_FLOPS_PER_CORE = 5e10  # a plan-level figure; telemetry measures the real one per run
ASSUMED_MFU = {"cuda": 0.35, "cpu": 0.25}
# Saved-for-backward bytes counted on the meta device exceed the peak the CPU members
# actually hold by about 1/0.72 (measured 0.65-0.78 on the test shapes: the allocator never
# holds every saved tensor at once, backward frees them as it goes).
ACTIVATION_CALIBRATION = 0.72
HEADROOM = 0.85  # plan to use at most this share of a device (allocator, comms buffers)
# `auto` prefers the least communication that fits: replicas, then ZeRO-2, then ZeRO-3.
AUTO_CANDIDATES = (("ddp", {}),
                   ("fsdp2", {"zero_stage": 2, "reshard_after_forward": False}),
                   ("fsdp2", {"zero_stage": 3, "reshard_after_forward": True}))


@dataclass
class ModelProfile:
    """What the estimator needs of a model: sizes, measured once on the meta device."""

    params: int
    largest_unit_params: int
    activation_bytes_per_image: int
    """fp32 bytes saved for backward per image (whole model)."""
    checkpointed_bytes_per_image: int
    """The same with per-block activation checkpointing: block inputs + one block's."""
    input_bytes_per_image: int
    flops_per_image: int = 0


@dataclass
class MemoryEstimate:
    param_bytes: float
    grad_bytes: float
    optim_bytes: float
    activation_bytes: float
    input_bytes: float

    @property
    def state_bytes(self) -> float:
        return self.param_bytes + self.grad_bytes + self.optim_bytes

    @property
    def total_bytes(self) -> float:
        return self.state_bytes + self.activation_bytes + self.input_bytes

    def as_dict(self) -> dict:
        return {**asdict(self), "state_bytes": self.state_bytes, "total_bytes": self.total_bytes}


def profile_model(model_factory, image_size: int) -> ModelProfile:
    """Measure a model (built by `model_factory()` on the meta device) for the estimator."""
    import torch

    from models import forward_flops
    from scaling.strategies.policy import blocks

    with torch.device("meta"):
        model = model_factory()
    params = sum(p.numel() for p in model.parameters())
    units = [sum(p.numel() for p in b.parameters()) for b in blocks(model)]
    saved: dict[int, int] = {}
    keep = []
    per_block = []
    block_inputs = []

    def pack(t):
        if id(t) not in saved:
            saved[id(t)] = t.numel() * t.element_size()
            keep.append(t)
        return t

    def before(_m, args):
        per_block.append(sum(saved.values()))
        block_inputs.append(sum(a.numel() * a.element_size() for a in args
                                if isinstance(a, torch.Tensor)))

    def after(_m, _a, _o):
        per_block[-1] = sum(saved.values()) - per_block[-1]

    handles = [b.register_forward_pre_hook(before) for b in blocks(model)]
    handles += [b.register_forward_hook(after) for b in blocks(model)]
    x = torch.empty(1, 3, image_size, image_size, device="meta")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    for h in handles:
        h.remove()
    total = sum(saved.values())
    # with checkpointing a block keeps only its input; backward recomputes one at a time
    ckpt = total - sum(per_block) + sum(block_inputs) + max(per_block, default=0)
    return ModelProfile(params=params, largest_unit_params=max(units, default=params),
                        activation_bytes_per_image=int(total),
                        checkpointed_bytes_per_image=int(ckpt),
                        input_bytes_per_image=3 * image_size * image_size * 4,
                        flops_per_image=forward_flops(model, image_size))


def profile_config(config, num_classes: int) -> ModelProfile:
    from models import create_model
    from scaling.recipe import model_kwargs

    return profile_model(lambda: create_model(config.model.arch, num_classes=num_classes,
                                              **model_kwargs(config)),
                         config.model.image_size)


def estimate(profile: ModelProfile, config, world_size: int, strategy: Optional[str] = None,
             shard: Optional[dict] = None) -> MemoryEstimate:
    """Per-device bytes for `config` at `world_size` under `strategy` (default: its own)."""
    strategy = strategy or config.shard.strategy
    s = {"zero_stage": config.shard.zero_stage,
         "reshard_after_forward": config.shard.reshard_after_forward,
         "offload": config.shard.offload, **(shard or {})}
    W, P = world_size, profile.params
    full, part = 4.0 * P, 4.0 * P / W
    momentum = 4.0 * P if config.optim.momentum > 0 else 0.0
    low = 2.0 if config.precision == "fp16" and strategy == "deepspeed" else 4.0
    stage = s["zero_stage"]
    bucket = 4.0 * (int(min(5e7, max(1024, P // 16))) // 1024 * 1024)  # deepspeed_zero.bucket_elements
    if strategy in ("fsdp2", "fsdp1") and stage == 0:
        strategy = "ddp"
    if strategy == "ddp":
        param, grad, optim = full, full, momentum
    elif strategy in ("fsdp2", "fsdp1"):
        unit = 4.0 * profile.largest_unit_params
        zero3 = stage == 3 and s["reshard_after_forward"]
        param = part + (2 * unit if zero3 else full)  # gathered: one unit (+prefetch) or all
        grad, optim = part + unit, momentum / W
    elif strategy == "deepspeed":
        if stage == 3:
            param = low * P / W + (0 if low == 4.0 else 4.0 * P / W)
            grad = part + bucket
        else:
            param = low * P + part
            grad = (full if stage == 1 else part) + bucket
        optim = momentum / W
    elif strategy == "fairscale":
        param, grad, optim = full, (full if stage == 1 else part), momentum / W
    else:
        raise ValueError(f"no memory model for shard.strategy={strategy!r}")
    if s["offload"]:
        optim = 0.0
        if strategy == "deepspeed":
            param -= 4.0 * P / W if stage != 3 else 0.0
    per_rank = config.optim.global_batch // W
    micro = config.optim.micro_batch or per_rank
    act = (profile.checkpointed_bytes_per_image if config.shard.activation_checkpointing
           else profile.activation_bytes_per_image)
    act_factor = ACTIVATION_CALIBRATION * (0.6 if config.precision in ("bf16", "fp16") else 1.0)
    return MemoryEstimate(param_bytes=param, grad_bytes=grad, optim_bytes=optim,
                          activation_bytes=act * act_factor * micro,
                          input_bytes=profile.input_bytes_per_image * per_rank * 5)


def device_capacity(config) -> float:
    """Bytes one device offers a run (before headroom)."""
    res = config.resources
    if res.device_mem_gb:
        return res.device_mem_gb * GIB
    if res.device == "cpu":
        return res.mem_gb * GIB / res.devices_per_node
    return GPUS.get(res.gpu, GPUS["H100"])[0] * GIB


def device_hours(profile: ModelProfile, config, devices: int) -> float:
    kind = "cpu" if config.resources.device == "cpu" else "cuda"
    if kind == "cpu":
        peak = CPU_FLOPS_PER_CORE * config.resources.cpus_per_rank
    else:
        peak = GPUS.get(config.resources.gpu, GPUS["H100"])[1]
    flops = 3.0 * profile.flops_per_image * config.optim.images_seen
    return flops / (peak * ASSUMED_MFU[kind] * devices) / 3600 * devices


@dataclass
class Plan:
    strategy: str
    shard: dict
    nodes: int
    devices_per_node: int
    estimate: MemoryEstimate
    fits: bool


def choose(profile: ModelProfile, config, max_nodes: int = 64) -> Plan:
    """`auto`: the least-communication strategy that fits, at the configured devices per
    node, adding nodes (powers of two) only when nothing fits on fewer."""
    from scaling.config import support_reason

    cap = device_capacity(config) * HEADROOM
    per_node = config.resources.devices_per_node
    device = "cpu" if config.resources.device == "cpu" else "cuda"
    nodes = config.resources.nodes
    best = None
    while nodes <= max_nodes:
        world = nodes * per_node
        if config.optim.global_batch % world == 0:
            for name, shard in AUTO_CANDIDATES:
                if support_reason(name, config.precision, device):
                    continue
                est = estimate(profile, config, world, name, shard)
                plan = Plan(name, shard, nodes, per_node, est, est.total_bytes <= cap)
                if plan.fits:
                    return plan
                if best is None or est.total_bytes < best.estimate.total_bytes:
                    best = plan
        nodes *= 2
    if best is None:
        best = Plan("fsdp2", dict(AUTO_CANDIDATES[-1][1]), config.resources.nodes, per_node,
                    estimate(profile, config, config.resources.world_size, "fsdp2",
                             AUTO_CANDIDATES[-1][1]), False)
    return best


class LiveTensorTracker:
    """Peak bytes of live tensor storages allocated while active (per process = per rank).

    A `TorchDispatchMode` sees every op's outputs; each new storage is counted until a
    finalizer sees it freed. Storages that exist before entering (parameters, optimizer
    state) are added with `add_existing`. Storage resizes done outside the dispatcher (FSDP2
    unshards that way) are not seen: measure a replicated strategy, or add them yourself.
    """

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker._see(out)
                return out

        self._mode = _Mode()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _see(self, out) -> None:
        import torch
        from torch.utils._pytree import tree_flatten

        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self.add(t)

    def add(self, t) -> None:
        storage = t.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or key in self.live:
            return
        self.live[key] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def add_existing(self, tensors) -> None:
        for t in tensors:
            if t is not None:
                self.add(t)

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def reset_peak(self) -> None:
        self.peak = self.current

    def __enter__(self) -> "LiveTensorTracker":
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)


def gib(n: float) -> float:
    return n / GIB if n and math.isfinite(n) else 0.0
