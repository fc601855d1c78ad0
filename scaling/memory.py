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

import bisect
import itertools
import math
import weakref
from dataclasses import asdict, dataclass
from typing import Optional

from contract.config import RunConfig
from contract.errors import ConfigError
from scaling import gpus

GIB = 2 ** 30
# Memory (GiB) and dense bf16 peak FLOP/s of the GPUs sweeps plan for.
CPU_FLOPS_PER_CORE = 5e10  # a plan-level figure; telemetry measures the real one per run
ASSUMED_MFU = {"cuda": 0.35, "cpu": 0.25}
# Saved-for-backward bytes counted on the meta device exceed the peak the CPU members
# actually hold by about 1/0.72 (measured 0.65-0.78 on the test shapes: the allocator never
# holds every saved tensor at once, backward frees them as it goes).
ACTIVATION_CALIBRATION = 0.72
HEADROOM = 0.85  # plan to use at most this share of a device (allocator, comms buffers)
# `auto` prefers the least communication that fits: replicas, then ZeRO-2, then ZeRO-3.
AUTO_CANDIDATES: tuple[tuple[str, dict[str, object]], ...] = (
    ("ddp", {}),
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
    param_numels: tuple = ()
    """Elements of each parameter in model order (how flat and whole-tensor shards cut)."""
    num_features: int = 0
    """Width of the pooled features transfer probes (0 when the model does not say)."""


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


def profile_model(model_factory, image_size: int,
                  flops_per_image: Optional[int] = None) -> ModelProfile:
    """Measure a model (built by `model_factory()` on the meta device) for the estimator;
    `flops_per_image` when the caller has already counted them (not counted again)."""
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
                        flops_per_image=(forward_flops(model, image_size)
                                         if flops_per_image is None else flops_per_image),
                        param_numels=tuple(p.numel() for p in model.parameters()),
                        num_features=int(getattr(model, "num_features", 0)))


def profile_config(config: RunConfig, num_classes: int,
                   flops_per_image: Optional[int] = None) -> ModelProfile:
    from models import create_model
    from scaling.recipe import model_kwargs

    return profile_model(lambda: create_model(config.model.arch, num_classes=num_classes,
                                              **model_kwargs(config)),
                         config.model.image_size, flops_per_image)


def bucket_elements(params: int) -> int:
    """DeepSpeed's reduce / all-gather bucket for a model of `params` elements: 1/16 of the
    model, at most 5e7. Its default of 5e8 elements holds a 2 GB gradient bucket per rank,
    which for the models here would outweigh the sharded state it saves; a gradient larger
    than the bucket is reduced from its own storage, so the bucket need not hold the largest
    tensor. A multiple of 1024 (ZeRO's alignment)."""
    return int(min(5e7, max(1024, params // 16))) // 1024 * 1024


def sdp_bucket_elements(params: int, world_size: int) -> int:
    """fairscale ShardedDataParallel's reduce buffer per destination rank: 1/16 of the model
    over all destinations. Bucketed gradients are views of the buckets and stay whole on
    every rank, so fairscale's default (2**23 elements, more than the models here) would
    leave every gradient whole."""
    return params // (16 * world_size)


def _shares(profile: ModelProfile, world: int, split: str) -> list[int]:
    """Elements of a sharded component each rank holds (`even` flat / dim-0 slices, or
    `whole` tensors assigned largest first to the least-loaded rank)."""
    P = profile.params
    if split == "whole" and profile.param_numels:
        loads = [0] * world
        for n in sorted(profile.param_numels, reverse=True):
            loads[loads.index(min(loads))] += n
        return loads
    return [-(-P // world)] * world


def _edge_grads(profile: ModelProfile, world: int) -> int:
    """DeepSpeed ZeRO-1/2: the most elements of whole parameters touching one rank's flat
    partition (model order), i.e. its partition widened to the parameters at its edges."""
    if not profile.param_numels:
        return -(-profile.params // world)
    size = -(-profile.params // world)
    ends = list(itertools.accumulate(profile.param_numels))  # parameter i spans ends[i-1]..ends[i]
    most = 0
    for rank in range(world):
        lo, hi = rank * size, min((rank + 1) * size, ends[-1])
        first = bisect.bisect_right(ends, lo)  # first parameter ending after lo
        last = bisect.bisect_left(ends, hi)  # the parameter holding element hi - 1
        start = ends[first - 1] if first else 0
        most = max(most, ends[min(last, len(ends) - 1)] - start)
    return most


def estimate(profile: ModelProfile, config: RunConfig, world_size: int,
             strategy: Optional[str] = None, shard: Optional[dict] = None,
             at_rest: bool = False) -> MemoryEstimate:
    """Per-device bytes for `config` at `world_size` under `strategy` (default: its own),
    from the strategy table's memory model of the stage it runs (the most-loaded rank).

    `at_rest`: only what a rank still holds after backward, before the step (what
    `Strategy.memory_report` measures): no transient buffers, activations or inputs."""
    from contract.strategies import BUFFERS, FULL, TABLE

    strategy = strategy or config.shard.strategy
    if strategy not in TABLE:
        raise ConfigError(f"no memory model for shard.strategy={strategy!r}")
    s = {"zero_stage": config.shard.zero_stage,
         "reshard_after_forward": config.shard.reshard_after_forward,
         "offload": config.shard.offload, **(shard or {})}
    spec = TABLE[strategy]
    mem = spec.memory(s["zero_stage"], s["reshard_after_forward"])
    W, P = world_size, profile.params
    share = max(_shares(profile, W, mem.split))
    param = 4.0 * (P if mem.params == FULL else share)  # autocast: weights stay fp32
    grad = 4.0 * (P if mem.grads == FULL else share)
    optim = (4.0 * (P if mem.optim == FULL else share) if config.optim.momentum > 0 else 0.0)
    offloaded = spec.offload if s["offload"] else ()
    unit = 4.0 * profile.largest_unit_params
    for name in mem.buffers:
        if at_rest and not BUFFERS[name][0]:
            continue
        if name == "gathered_units":
            param, grad = param + 2 * unit, grad + unit
        elif name == "gathered_model":
            param, grad = param + 4.0 * P, grad + unit
        elif name == "gathered_modules":
            param += 4.0 * (max(profile.param_numels, default=0) + bucket_elements(P))
        elif name in ("reduce_bucket", "reduce_bucket_held"):
            grad += 4.0 * bucket_elements(P)
        elif name == "fp32_master" and "master" not in offloaded:
            param += 4.0 * share
        elif name == "edge_grads":
            grad += 4.0 * (_edge_grads(profile, W) - share)
        elif name == "sdp_buckets":
            grad += 4.0 * (W - 1) * sdp_bucket_elements(P, W)
    if "optim" in offloaded:
        optim = 0.0
    if at_rest:
        return MemoryEstimate(param, grad, optim, 0.0, 0.0)
    per_rank = config.optim.global_batch // W
    micro = config.optim.micro_batch or per_rank
    act = (profile.checkpointed_bytes_per_image if config.shard.activation_checkpointing
           else profile.activation_bytes_per_image)
    act_factor = ACTIVATION_CALIBRATION * (0.6 if config.precision in ("bf16", "fp16") else 1.0)
    return MemoryEstimate(param_bytes=param, grad_bytes=grad, optim_bytes=optim,
                          activation_bytes=act * act_factor * micro,
                          input_bytes=profile.input_bytes_per_image * per_rank * 5)


def device_capacity(config: RunConfig) -> float:
    """Bytes one device offers a run (before headroom)."""
    res = config.resources
    if res.device_mem_gb:
        return res.device_mem_gb * GIB
    if res.device == "cpu":
        return res.mem_gb * GIB / res.devices_per_node
    return gpus.by_name(res.gpu).memory_gb * GIB


def device_hours(profile: ModelProfile, config: RunConfig, devices: int) -> float:
    kind = "cpu" if config.resources.device == "cpu" else "cuda"
    if kind == "cpu":
        peak = CPU_FLOPS_PER_CORE * config.resources.cpus_per_rank
    else:
        peak = gpus.by_name(config.resources.gpu).half
    images = config.optim.images_seen
    if "finetune" in config.transfer.protocols:  # trains the whole trunk again per target
        images += config.transfer.finetune.images_seen * len(config.transfer.targets)
    flops = 3.0 * profile.flops_per_image * images
    return flops / (peak * ASSUMED_MFU[kind] * devices) / 3600 * devices


@dataclass
class ShardPlan:
    strategy: str
    shard: dict
    nodes: int
    devices_per_node: int
    estimate: MemoryEstimate
    fits: bool


def apply_plan(config: RunConfig, plan: ShardPlan) -> str:
    """Write `auto`'s choice into `config` (in place): strategy, its shard knobs, nodes x
    devices; returns what the sweep and the log say (`auto->fsdp2`, `(does not fit)`)."""
    config.shard.strategy = plan.strategy
    for name, value in plan.shard.items():
        setattr(config.shard, name, value)
    config.resources.nodes = plan.nodes
    config.resources.devices_per_node = plan.devices_per_node
    return f"auto->{plan.strategy}" + ("" if plan.fits else " (does not fit)")


def choose(profile: ModelProfile, config: RunConfig, max_nodes: int = 64) -> ShardPlan:
    """`auto`: the least-communication strategy that fits, at the configured devices per
    node, adding nodes (powers of two) only when nothing fits on fewer."""
    from contract.config import support_reason

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
                plan = ShardPlan(name, shard, nodes, per_node, est, est.total_bytes <= cap)
                if plan.fits:
                    return plan
                if best is None or est.total_bytes < best.estimate.total_bytes:
                    best = plan
        nodes *= 2
    if best is None:
        best = ShardPlan("fsdp2", dict(AUTO_CANDIDATES[-1][1]), config.resources.nodes, per_node,
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

    def __enter__(self) -> LiveTensorTracker:
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)


def gib(n: float) -> float:
    return n / GIB if n and math.isfinite(n) else 0.0
