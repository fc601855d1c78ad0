"""The strategy table: one torch-free row per sharding strategy, read by everything that
needs to know about strategies - config validation and the support matrix
(contract/config.py), the memory estimator (scaling/memory.py), the registry
(`get_strategy`), the tests and the benches. Adding a strategy is one `StrategySpec` here
plus its module.

A row says which `shard.zero_stage` values the strategy accepts and what each means, where
offload is possible, which (precision, device) cells are refused and why, and the memory
model of each stage: which of parameters / gradients / optimizer state a rank holds whole
or as a 1/world share after backward and before the optimizer step (the moment
`Strategy.memory_report` measures), plus the buffers the library adds on top. The memory
models are as measured at 2 gloo ranks (tests/scaling/test_strategies.py holds each row to
its ideal), not as the libraries' documentation promises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FULL, SHARDED = "full", "sharded"

# Buffers a library holds besides the parameter / gradient / optimizer-state tensors;
# scaling/memory.py sizes each. `persistent` ones are still held when memory_report
# measures (after backward, before the step); the others exist only inside the step.
BUFFERS = {
    "gathered_units": (False, ("ZeRO-3: two units' parameters gathered (the one running and "
                               "the prefetched one) and one unit's unsharded gradients")),
    "gathered_model": (False, ("SHARD_GRAD_OP: every parameter gathered from forward until "
                               "backward frees it, and one unit's unsharded gradients")),
    "gathered_modules": (False, ("DeepSpeed ZeRO-3: the running module's parameters gathered "
                                 "plus the prefetch bucket (stage3_prefetch_bucket_size, "
                                 "stage3_max_live_parameters and stage3_max_reuse_distance = "
                                 "the reduce bucket)")),
    "reduce_bucket": (False, ("DeepSpeed's gradient bucket (reduce_bucket_size = 1/16 of the "
                              "model), released at the end of backward")),
    "reduce_bucket_held": (True, ("DeepSpeed ZeRO-3's gradient bucket, kept between steps")),
    "fp32_master": (True, ("DeepSpeed keeps an fp32 master copy of its partition beside the "
                           "weights, even when the weights are fp32 (ZeRO-1/2: always; ZeRO-3: "
                           "0.19.8 means to share the partition's storage when dtype and device "
                           "match, but compares a torch.device with the accelerator's device "
                           "name string, which is never equal; no ds_config option removes it)")),
    "edge_grads": (True, ("DeepSpeed ZeRO-1/2 hold the whole gradient of every parameter that "
                          "touches their flat partition, so a parameter straddling a partition "
                          "edge is held whole on both sides")),
    "sdp_buckets": (True, ("fairscale ShardedDataParallel's reduce buckets (the smallest "
                           "gradients, 1/16 of the model in all): their gradients stay whole")),
}


@dataclass(frozen=True)
class Memory:
    """Per-rank state after backward, before the step: each of params / grads / optim is
    FULL (a replica) or SHARDED (about 1/world), plus named BUFFERS."""

    params: str
    grads: str
    optim: str
    buffers: tuple = ()
    split: str = "even"
    """How a shard is cut: `even` (flat or dim-0 slices, ceil(P/world) each) or `whole`
    (whole tensors per rank, assigned largest first to the least-loaded rank)."""

    def __post_init__(self) -> None:
        for kind in (self.params, self.grads, self.optim):
            assert kind in (FULL, SHARDED), kind
        assert all(b in BUFFERS for b in self.buffers), self.buffers
        assert self.split in ("even", "whole"), self.split


@dataclass(frozen=True)
class Stage:
    meaning: str
    memory: Memory


@dataclass(frozen=True)
class StrategySpec:
    name: str
    module: str
    """Import path of the module holding the strategy class (imported only when chosen)."""
    cls: str
    summary: str
    stages: dict
    """zero_stage -> Stage; the stages the strategy accepts."""
    stage_fix: str = ""
    """The fix named when shard.zero_stage is not one of `stages`."""
    reads_stage: bool = True
    """False: shard.zero_stage is ignored (the strategy has one behaviour, `stages[0]`)."""
    reshard_knob: bool = False
    """FSDP: zero_stage 3 with reshard_after_forward=false runs the stage-2 row."""
    offload: tuple = ()
    """What shard.offload moves to host memory (`optim`, `master`); empty = no offload."""
    refused: dict = field(default_factory=dict)
    """(precision, device) -> the reason the cell is refused at config load."""

    def stage_of(self, zero_stage: int, reshard_after_forward: bool = True) -> int:
        """The stage row a shard section runs."""
        if not self.reads_stage:
            return next(iter(self.stages))
        if self.reshard_knob and zero_stage == 3 and not reshard_after_forward:
            return 2
        return zero_stage

    def memory(self, zero_stage: int, reshard_after_forward: bool = True) -> Memory:
        return self.stages[self.stage_of(zero_stage, reshard_after_forward)].memory


_ZERO3 = Memory(SHARDED, SHARDED, SHARDED, ("gathered_units",))
_FSDP_STAGES = {
    3: Stage("FULL_SHARD / ZeRO-3: parameters, gradients and optimizer state sharded; each "
             "unit is gathered for its forward and again for its backward", _ZERO3),
    2: Stage("SHARD_GRAD_OP / ZeRO-2: as 3, but a unit's parameters stay gathered from its "
             "forward until its backward (one all-gather per step); after backward they are "
             "sharded again, so between steps it holds what ZeRO-3 holds",
             Memory(SHARDED, SHARDED, SHARDED, ("gathered_model",))),
}

TABLE: dict[str, StrategySpec] = {s.name: s for s in (
    StrategySpec(
        "ddp", "scaling.strategies.ddp", "DDPStrategy",
        "full replicas, gradients all-reduced (the reference)",
        {0: Stage("replicas: every rank holds everything (gradients are views of DDP's "
                  "all-reduce buckets)", Memory(FULL, FULL, FULL))},
        reads_stage=False),
    StrategySpec(
        "fsdp2", "scaling.strategies.fsdp2", "FSDP2Strategy",
        "`fully_shard` per residual block + root (per-parameter dim-0 shards)",
        _FSDP_STAGES,
        stage_fix="fsdp2 shards parameters, gradients and optimizer state: use 3 "
                  "(reshard_after_forward picks ZeRO-3 or ZeRO-2) or 2 (ZeRO-2)",
        reshard_knob=True, offload=("optim",)),
    StrategySpec(
        "fsdp1", "scaling.strategies.fsdp1", "FSDP1Strategy",
        "`FullyShardedDataParallel` (flat parameters), one unit per residual block",
        {**_FSDP_STAGES,
         0: Stage("NO_SHARD: replicas, DDP-like (for comparison)", Memory(FULL, FULL, FULL))},
        stage_fix="fsdp1 maps 3 -> FULL_SHARD (or SHARD_GRAD_OP with "
                  "reshard_after_forward=false), 2 -> SHARD_GRAD_OP, 0 -> NO_SHARD",
        reshard_knob=True, offload=("optim",)),
    StrategySpec(
        "deepspeed", "scaling.strategies.deepspeed_zero", "DeepSpeedStrategy",
        "ZeRO 1/2/3 via `deepspeed.initialize`, ds_config generated from the run config",
        {1: Stage("ZeRO-1: optimizer state partitioned; gradients are reduced into the "
                  "partition at the end of each step's backward (held whole across the "
                  "micro-batches of an accumulated step)",
                  Memory(FULL, SHARDED, SHARDED, ("fp32_master", "edge_grads", "reduce_bucket"))),
         2: Stage("ZeRO-2: optimizer state and gradients partitioned, gradients reduced "
                  "bucket by bucket during backward (also across micro-batches)",
                  Memory(FULL, SHARDED, SHARDED, ("fp32_master", "edge_grads", "reduce_bucket"))),
         3: Stage("ZeRO-3: parameters partitioned too, gathered per module; in fp32 the "
                  "fp32 master copy of the partition doubles the parameter bytes (1.37x of "
                  "ideal at 2 ranks on the test model)",
                  Memory(SHARDED, SHARDED, SHARDED,
                         ("gathered_modules", "reduce_bucket_held", "fp32_master")))},
        stage_fix="deepspeed runs ZeRO 1, 2 or 3 (stage 0 is plain data parallel: use ddp)",
        offload=("optim", "master"),
        refused={("fp16", "cpu"): "DeepSpeed's fp16 loss scaling runs on CUDA only; use "
                                  "bf16 or fp32 on CPU",
                 ("fp16", "cuda"): "DeepSpeed's fp16 mode did not train like fp32 DDP on an "
                                   "H200 (deepspeed 0.19.8, ZeRO 1-3, 5 steps of the test "
                                   "model: loss 3.75/3.69/3.73/3.66/3.78 against "
                                   "3.75/3.58/3.33/3.33/3.04); use bf16, or fp16 "
                                   "under ddp, fsdp1, fsdp2 or fairscale"}),
    StrategySpec(
        "fairscale", "scaling.strategies.fairscale_oss", "FairscaleStrategy",
        "OSS optimizer sharding + DDP (`zero_stage: 1`) or ShardedDataParallel (`2`)",
        {1: Stage("ZeRO-1: OSS shards the optimizer state (whole tensors per rank); DDP "
                  "all-reduces full gradients", Memory(FULL, FULL, SHARDED, split="whole")),
         2: Stage("ZeRO-2: OSS + ShardedDataParallel: each gradient is reduced to the rank "
                  "that owns its optimizer shard and freed elsewhere",
                  Memory(FULL, SHARDED, SHARDED, ("sdp_buckets",), split="whole"))},
        stage_fix="fairscale runs OSS (1) or OSS + ShardedDataParallel (2); its own FSDP "
                  "(stage 3) fails on this torch (it looks up a removed collective, KeyError "
                  "'all_gather'): use fsdp2 for ZeRO-3"),
)}

AUTO = "auto"
"""Not a row: the sweep's memory estimator picks a row (scaling/memory.py AUTO_CANDIDATES)."""
NAMES = (*TABLE, AUTO)


def rows() -> list[tuple[str, dict]]:
    """(label, shard section) for every stage row of every strategy, e.g. `deepspeed_z2`;
    the tests and benches iterate these."""
    out = []
    for s in TABLE.values():
        for stage in s.stages:
            label = s.name if not s.reads_stage else f"{s.name}_z{stage}"
            shard = {"strategy": s.name} if not s.reads_stage else {"strategy": s.name,
                                                                     "zero_stage": stage}
            out.append((label, shard))
    return out


ZERO_SHARDS = {0: (), 1: ("optim",), 2: ("optim", "grads"), 3: ("optim", "grads", "params")}
"""What each ZeRO stage shards by definition (Rajbhandari et al. 2020); every row shards at
least this much (tests/scaling/test_strategies.py checks the table against it)."""


def ideal_bytes(memory: Memory, full: dict, world: int) -> float:
    """Bytes a rank holds if each component is exactly what the row says (FULL: `full[k]`,
    SHARDED: `full[k] / world`), with no buffers: the row's ideal."""
    return sum(full[k] / (world if getattr(memory, k) == SHARDED else 1)
               for k in ("params", "grads", "optim"))
