"""Typed run configuration (torch-free): what `scaling train --config RUN/config.yaml` reads.

Nested dataclasses, one per docs/design.md section; each `__post_init__` rejects bad values with
a one-line `ConfigError` naming the field, the value and the fix, so a bad sweep fails at
`scaling sweep`, not an hour into a Slurm job. `read_run_config` is the one reader every
step uses; it is strict: an integer field takes integers only ("5" and 5.0 are refused) and
an unknown key is an error naming the closest valid field (the general typed reader of
every config is contract/typed.py; this module holds the run config and its rules).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from contract.errors import ConfigError, check
from contract.strategies import NAMES as STRATEGIES
from contract.strategies import TABLE
from contract.target_spec import parse_target, parse_targets
from contract.typed import (  # noqa: F401 (the reader's names, used and re-exported here)
    closest,
    dump_yaml,
    field_types,
    from_dict,
    get_path,
    load_yaml,
    set_path,
    to_dict,
)
from contract.versions import RUN_CONFIG as SCHEMA_VERSION
from contract.world_config import WorldConfig

PRECISIONS = ("fp32", "bf16", "fp16")
"""The precisions a run trains in."""
PRECISION_CHOICES = (*PRECISIONS, "auto")
"""What `precision` accepts: `auto` is resolved where the run trains (scaling/precision.py)."""
RESAMPLES = ("natural", "sqrt", "uniform")
NOISE_FROM = ("marginal", "uniform")
SCHEDULES = ("step", "cosine")
PROTOCOLS = ("linear", "finetune", "fewshot")
DEVICES = ("auto", "cpu", "cuda")
SYNTHETIC_IMAGES = 2 ** 40  # the world's pretraining index range (data/world.py)


@dataclass
class ModelConfig:
    """The trunk: a ResNeXt of the paper's family or a small CPU member of it."""

    arch: str = "resnext"
    """Registry name (`models.list_models()`): `resnext` (all knobs below) or a named member
    such as `resnext101_32x16d` (which fixes depth, cardinality and width)."""
    depth: int = 101
    """Bottleneck depth: 4 stages for 14/26/50/101/152; 3 stages for 9k+2 when stages=3."""
    stages: int = 4
    """Residual stages (4 as in ResNet; 3 for small CPU members at 24-64 px)."""
    cardinality: int = 32
    """Groups in each 3x3 conv (the paper's 32)."""
    width_per_group: int = 4
    """Channels per group in the first stage at base_width 64 (the paper's C in 32xCd)."""
    base_width: int = 64
    """Planes of the first stage (64 in torchvision; 8-16 for CPU members)."""
    stem: str = "imagenet"
    """`imagenet` (7x7/2 conv + max-pool) or `small` (3x3/1 conv, no pool) for tiny images."""
    image_size: int = 224
    """Input side in pixels (the synthetic world renders at this size)."""
    channels_last: bool = True
    """Memory format: channels_last is +45-70% on CPU (measured) and what tensor cores want."""

    def __post_init__(self) -> None:
        check(self.stem in ("imagenet", "small"), "model.stem", self.stem,
              "use 'imagenet' or 'small'")
        check(self.stages in (3, 4), "model.stages", self.stages, "use 3 or 4")
        check(self.cardinality >= 1, "model.cardinality", self.cardinality, "use at least 1")
        check(self.width_per_group >= 1, "model.width_per_group", self.width_per_group,
              "use at least 1")
        check(self.base_width >= 4, "model.base_width", self.base_width, "use at least 4")
        check(self.base_width * self.width_per_group >= 64, "model.width_per_group",
              self.width_per_group, f"with base_width {self.base_width} use at least "
              f"{-(-64 // self.base_width)} (torchvision's group width is "
              "base_width x width_per_group / 64 channels, at least 1)")
        check(8 <= self.image_size <= 1024, "model.image_size", self.image_size,
              "use a side between 8 and 1024 pixels")


@dataclass
class DataConfig:
    """Where pretraining images and their hashtags come from, and the paper's data knobs."""

    source: str = "synthetic"
    """`synthetic` (embedded world, generated on the fly), `hf` or `webdataset`."""
    path: Optional[str] = None
    """Folder or shard pattern for `hf` / `webdataset` sources."""
    images: int = 10_000
    """Pretraining set size N (nested: the 10x set contains the 1x set)."""
    vocab: Union[int, str] = "all"
    """An integer K (the K most frequent canonical tags), `all`, `matched:<target>`, or
    `random:K` (K tags drawn at random, one fixed draw per data.seed: the size control)."""
    resample: str = "natural"
    """Tag-frequency resampling: natural, sqrt or uniform."""
    label_noise: float = 0.0
    """Fraction of tags replaced by another tag (the paper's robustness experiment)."""
    label_noise_from: str = "marginal"
    """Where a replacement tag comes from: `marginal` (drawn by tag frequency, never the
    replaced tag itself: the paper's injection) or `uniform` (any vocabulary tag)."""
    targets: str = "soft"
    """`soft` (1/k over an image's k tags, softmax CE) or `multihot` (per-class sigmoid)."""
    seed: int = 0
    """World seed: the same world across a sweep's runs and seeds."""
    cache: bool = True
    """Render the N pretraining images once into a uint8 cache (else render per batch)."""
    world: WorldConfig = field(default_factory=WorldConfig)
    max_corrupt_frac: float = 0.01
    """Real sources: the run fails when more than this fraction of the N records is
    missing or undecodable (the counts are written to state.json either way)."""
    supervised: Optional[str] = None
    """The supervised baseline: pretrain on this target's clean train labels (one class per
    image, data.images of them) instead of hashtags, as the paper's ImageNet-pretrained
    comparison; any name `transfer.targets` accepts. None (default) = hashtags."""

    def __post_init__(self) -> None:
        check(0.0 <= self.max_corrupt_frac <= 1.0, "data.max_corrupt_frac",
              self.max_corrupt_frac, "use a fraction in [0, 1]")
        check(self.source in ("synthetic", "hf", "webdataset"), "data.source", self.source,
              "use 'synthetic', 'hf' or 'webdataset'")
        if self.supervised is not None:
            parse_target(self.supervised, "data.supervised")
        check(self.source == "synthetic" or bool(self.path), "data.path", self.path,
              f"set data.path for data.source={self.source!r}")
        check(self.images >= 1, "data.images", self.images, "use at least 1 image")
        check(self.source != "synthetic" or self.images <= SYNTHETIC_IMAGES, "data.images",
              self.images, f"the synthetic world serves at most 2**40 = {SYNTHETIC_IMAGES} "
              "pretraining images")
        if isinstance(self.vocab, int):
            check(self.vocab >= 1, "data.vocab", self.vocab,
                  "use K >= 1, 'all' or 'matched:<target>'")
        else:
            random_k = self.vocab.split(":", 1)[1] if self.vocab.startswith("random:") else ""
            check(self.vocab == "all" or self.vocab.startswith("matched:")
                  and len(self.vocab) > len("matched:")
                  or random_k.isdigit() and int(random_k) >= 1, "data.vocab", self.vocab,
                  "use an integer K, 'all', 'matched:<target>' (e.g. matched:fine) or "
                  "'random:K' (e.g. random:16)")
        check(self.resample in RESAMPLES, "data.resample", self.resample,
              f"use one of {', '.join(RESAMPLES)}")
        check(0.0 <= self.label_noise < 1.0, "data.label_noise", self.label_noise,
              "use a fraction in [0, 1)")
        check(self.label_noise_from in NOISE_FROM, "data.label_noise_from",
              self.label_noise_from, f"use one of {', '.join(NOISE_FROM)}")
        check(self.targets in ("soft", "multihot"), "data.targets", self.targets,
              "use 'soft' or 'multihot'")


@dataclass
class OptimConfig:
    """The paper's recipe: synchronous SGD, Nesterov, linear lr scaling, warmup, halving."""

    global_batch: int = 256
    """Images per optimizer step, summed over ranks; exact at any world size."""
    micro_batch: Optional[int] = None
    """Images per rank per forward; None = global_batch / world size (accumulate if smaller)."""
    lr_per_256: float = 0.1
    """Learning rate per 256 images, scaled linearly with global_batch (Goyal et al.)."""
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05
    """Fraction of the schedule spent in linear warmup."""
    schedule: str = "step"
    """`step` (halve at equal intervals, the paper) or `cosine`."""
    halvings: int = 4
    """Number of lr halvings over the schedule after warmup (step schedule)."""
    images_seen: int = 100_000
    """Schedule length in images processed, independent of world size."""
    augment: bool = True
    """Random horizontal flip and a small shift."""
    max_skipped_steps: int = 20
    """fp16: consecutive overflow-skipped steps after which the run stops with an error."""

    def __post_init__(self) -> None:
        check(self.global_batch >= 1, "optim.global_batch", self.global_batch, "use at least 1")
        check(self.micro_batch is None or self.micro_batch >= 1, "optim.micro_batch",
              self.micro_batch, "use at least 1 or leave it unset")
        check(self.lr_per_256 > 0, "optim.lr_per_256", self.lr_per_256, "use a positive rate")
        check(0.0 <= self.momentum < 1.0, "optim.momentum", self.momentum, "use a value in [0, 1)")
        check(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, "use a value >= 0")
        check(0.0 <= self.warmup_frac < 1.0, "optim.warmup_frac", self.warmup_frac,
              "use a fraction in [0, 1)")
        check(self.schedule in SCHEDULES, "optim.schedule", self.schedule,
              f"use one of {', '.join(SCHEDULES)}")
        check(self.halvings >= 0, "optim.halvings", self.halvings, "use a count >= 0")
        check(self.max_skipped_steps >= 1, "optim.max_skipped_steps", self.max_skipped_steps,
              "use at least 1")
        check(self.images_seen >= self.global_batch, "optim.images_seen", self.images_seen,
              f"use at least one global batch ({self.global_batch} images)")


@dataclass
class FinetuneConfig(OptimConfig):
    """`transfer.finetune`: the schedule of full fine-tuning (the hashtag head replaced by
    the target's, every weight trained), the same recipe fields as `optim` with defaults
    for a short run on a few thousand clean images."""

    global_batch: int = 128
    lr_per_256: float = 0.2
    """Tuned on world 0 (data/README.md): on `novel`, 0.05 / 0.1 / 0.2 / 0.4 gave 71.2 /
    77.3 / 81.5 / 85.5 top-1 at 40k images seen (linear probe 69.5); 0.2 keeps the step
    the pretraining recipe's."""
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05
    schedule: str = "cosine"
    images_seen: int = 40_000
    """About 13 passes over transfer.train_images=3000."""
    freeze_trunk: bool = False
    """Train the new head only: the trunk's weights and batch-norm statistics stay as
    pretrained (finding 6's breaker: fine-tuning without the trunk's adaptation; ddp only)."""

    def __post_init__(self) -> None:
        check(isinstance(self.freeze_trunk, bool), "transfer.finetune.freeze_trunk",
              self.freeze_trunk, "use true or false")
        try:
            super().__post_init__()
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("optim.", "transfer.finetune.", 1)) from None


@dataclass
class ShardConfig:
    """How the model is spread over ranks; one module per strategy in scaling/strategies/."""

    strategy: str = "ddp"
    """A row of the strategy table (contract/strategies.py) or `auto`."""
    zero_stage: int = 3
    """ZeRO stage; the stages each strategy accepts, and what each shards, are its table
    row's (deepspeed 1, 2, 3; fairscale 1, 2; fsdp2 2, 3; fsdp1 0, 2, 3; ddp ignores it)."""
    reshard_after_forward: bool = True
    """FSDP: true = ZeRO-3 (free params after forward), false = ZeRO-2."""
    activation_checkpointing: bool = False
    offload: bool = False
    """Offload parameters / optimizer state to CPU where the strategy supports it."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    deepspeed_overrides: dict = field(default_factory=dict)
    """Merged into the generated ds_config (validated keys only, see DEEPSPEED_OVERRIDES)."""

    def __post_init__(self) -> None:
        check(self.strategy in STRATEGIES, "shard.strategy", self.strategy,
              f"use one of {', '.join(STRATEGIES)}")
        check(self.zero_stage in (0, 1, 2, 3), "shard.zero_stage", self.zero_stage,
              "use 0, 1, 2 or 3")
        spec = TABLE.get(self.strategy)
        if spec is not None and spec.reads_stage:
            check(self.zero_stage in spec.stages, "shard.zero_stage", self.zero_stage,
                  spec.stage_fix)
        if self.deepspeed_overrides:
            check(self.strategy in ("deepspeed", "auto"), "shard.deepspeed_overrides",
                  self.deepspeed_overrides, "only the deepspeed strategy reads it: remove it")
            _check_overrides(self.deepspeed_overrides, DEEPSPEED_OVERRIDES,
                             "shard.deepspeed_overrides")


# What `shard.deepspeed_overrides` may set: the escape hatch for power users. Keys the run
# config already owns (batch sizes, optimizer, scheduler, precision, ZeRO stage) are refused
# with the field that sets them, so the two can never disagree.
DEEPSPEED_OVERRIDES: dict = {
    "zero_optimization": {
        "reduce_bucket_size": None, "allgather_bucket_size": None, "overlap_comm": None,
        "contiguous_gradients": None, "reduce_scatter": None, "allgather_partitions": None,
        "round_robin_gradients": None, "sub_group_size": None,
        "stage3_prefetch_bucket_size": None, "stage3_param_persistence_threshold": None,
        "stage3_max_live_parameters": None, "stage3_max_reuse_distance": None,
        "stage3_gather_16bit_weights_on_model_save": None,
        "offload_optimizer": {"device": None, "pin_memory": None, "buffer_count": None},
        "offload_param": {"device": None, "pin_memory": None, "buffer_count": None},
    },
    "gradient_clipping": None, "communication_data_type": None, "prescale_gradients": None,
    "gradient_predivide_factor": None, "wall_clock_breakdown": None, "steps_per_print": None,
    "zero_allow_untested_optimizer": None, "dump_state": None,
}
_OWNED = {"train_batch_size": "optim.global_batch",
          "train_micro_batch_size_per_gpu": "optim.micro_batch",
          "gradient_accumulation_steps": "optim.micro_batch", "optimizer": "optim",
          "scheduler": "optim.schedule", "bf16": "precision", "fp16": "precision",
          "torch_autocast": "precision", "zero_optimization.stage": "shard.zero_stage",
          "zero_optimization.cpu_offload": "shard.offload", "amp": "precision"}


def _check_overrides(given: dict, allowed: dict, where: str) -> None:
    for key, value in given.items():
        path = f"{where}.{key}"
        owned = _OWNED.get(path.split(".", 2)[-1] if path.count(".") >= 2 else key)
        if owned:
            raise ConfigError(f"{path}={value!r} is invalid: the run config sets it; use "
                              f"{owned} instead")
        if key not in allowed:
            raise ConfigError(f"{path} is not an accepted deepspeed override: did you mean "
                              f"{closest(str(key), allowed)!r}? (accepted: "
                              f"{', '.join(sorted(allowed))})")
        sub = allowed[key]
        if isinstance(sub, dict):
            check(isinstance(value, dict), path, value, "use a mapping")
            _check_overrides(value, sub, path)


# ------------------------------------------------------------------------ support matrix
# (strategy, precision, device) -> None when supported, else the reason it is refused; the
# refused cells and offload support are rows of the strategy table
# (contract/strategies.py). Every supported CPU cell is exercised by
# tests/scaling/test_precision.py and every GPU cell by its gpu-marked twin;
# docs/strategies.md, "The support matrix", publishes this table as measured.


def support_reason(strategy: str, precision: str, device: str, offload: bool = False
                   ) -> Optional[str]:
    """Why (strategy, precision, device) is refused, or None when the cell is supported."""
    spec = TABLE.get(strategy)
    if spec is None:  # `auto`: checked again once resolved
        return None
    reason = spec.refused.get((precision, device))
    if reason:
        return reason
    if offload and device == "cpu":
        return "offload moves state from the accelerator to host memory; on CPU there is " \
               "nothing to offload: set shard.offload=false"
    if offload and not spec.offload:
        able = [s.name for s in TABLE.values() if s.offload]
        return f"{strategy} has no offload: use {', '.join(able[:-1])} or {able[-1]}"
    return None


def support_matrix() -> dict:
    """{(strategy, precision, device): reason or None} over every concrete cell."""
    return {(s, p, d): support_reason(s, p, d) for s in TABLE
            for p in PRECISIONS for d in ("cpu", "cuda")}


@dataclass
class ResourcesConfig:
    """What one run asks of the scheduler (Slurm) or the local machine."""

    nodes: int = 1
    devices_per_node: int = 1
    """Ranks per node: GPUs on a GPU node, processes on a CPU node."""
    device: str = "auto"
    """`cpu`, `cuda` or `auto` (cuda when available)."""
    cpus_per_rank: int = 1
    """CPU cores per rank (torch threads on CPU, loader workers on GPU)."""
    mem_gb: int = 8
    """Host memory per node."""
    time_min: int = 60
    """Wall-time limit per attempt, minutes."""
    max_attempts: int = 3
    """Times a preempted task may start (state.json counts them) before it stops requeueing."""
    collective_timeout_s: int = 1800
    """How long a rank waits in a collective before the run fails with a clear error (a
    peer rank or its node stopped answering). Below the cluster's node timeout (Slurm's
    SlurmdTimeout) a lost node fails the run fast; above it Slurm sees the node fail first
    and requeues the task, which resumes from its checkpoint."""
    gpu: str = "H100"
    """GPU model for estimates (peak FLOP/s and memory table in scaling/memory.py)."""
    device_mem_gb: float = 0.0
    """Memory per device for `shard.strategy: auto`; 0 = the GPU table, or mem_gb / devices
    per node on CPU."""

    def __post_init__(self) -> None:
        check(self.nodes >= 1, "resources.nodes", self.nodes, "use at least 1")
        check(self.devices_per_node >= 1, "resources.devices_per_node", self.devices_per_node,
              "use at least 1")
        check(self.device in DEVICES, "resources.device", self.device,
              f"use one of {', '.join(DEVICES)}")
        check(self.cpus_per_rank >= 1, "resources.cpus_per_rank", self.cpus_per_rank,
              "use at least 1")
        check(self.mem_gb >= 1, "resources.mem_gb", self.mem_gb, "use at least 1")
        check(self.time_min >= 1, "resources.time_min", self.time_min, "use at least 1")
        check(self.max_attempts >= 1, "resources.max_attempts", self.max_attempts,
              "use at least 1")
        timeout = self.collective_timeout_s
        check(isinstance(timeout, int) and not isinstance(timeout, bool) and timeout >= 5,
              "resources.collective_timeout_s", self.collective_timeout_s,
              "use at least 5 seconds (the default is 1800)")
        check(self.device_mem_gb >= 0, "resources.device_mem_gb", self.device_mem_gb,
              "use 0 (from the table) or a positive size")

    @property
    def world_size(self) -> int:
        return self.nodes * self.devices_per_node


@dataclass
class CheckpointConfig:
    every_steps: int = 200
    """Steps between checkpoints (one is always written at the end and on a signal)."""
    keep_last: int = 2

    def __post_init__(self) -> None:
        check(self.every_steps >= 1, "checkpoint.every_steps", self.every_steps, "use at least 1")
        check(self.keep_last >= 1, "checkpoint.keep_last", self.keep_last, "use at least 1")


@dataclass
class TransferConfig:
    """Which target tasks each trunk is evaluated on, and how."""

    targets: list = field(default_factory=lambda: ["fine"])
    """Target tasks: the synthetic world's `fine`, `coarse`, `novel`; a user image folder
    (`imagefolder:<folder>`, one sub-folder per class) or Hugging Face `datasets` folder
    (`hf:<folder>`, image + label columns); or a mapping {name, format, path, image_column,
    label_column, test_fraction} (contract/target_spec.py)."""
    protocols: list = field(default_factory=lambda: ["linear"])
    """`linear`: logistic regression on frozen pooled features (the paper's feature
    transfer); `finetune`: the whole network trained on the target (transfer.finetune);
    `fewshot`: k-shot linear probes (transfer.fewshot_shots), averaged over draws."""
    train_images: int = 4000
    """At most this many train images per target (all of a smaller user set)."""
    test_images: int = 4000
    floor: bool = True
    """Also probe a randomly initialised trunk (the floor every figure shows)."""
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    fewshot_shots: list = field(default_factory=lambda: [1, 5, 10, 25])
    """k of the k-shot probes (train images per class)."""
    fewshot_draws: int = 5
    """Random draws of the k-shot train set per k; the mean and sd are reported."""
    fewshot_l2: float = 1e-2
    """L2 strength of the k-shot probes (too few images to carve a validation split)."""
    dedup_dir: Optional[str] = None
    """Folder holding `dedup/` written by `scaling data dedup` (default: the sweep folder,
    then the run folder); where a file for this run's pretraining set and a target exists,
    results carry `top1_dedup`, the paper's duplicate-aware lower bound."""

    def __post_init__(self) -> None:
        check(isinstance(self.targets, list) and len(self.targets) >= 1, "transfer.targets",
              self.targets, "name at least one target")
        parse_targets(self.targets)
        check(len(self.protocols) >= 1, "transfer.protocols", self.protocols,
              f"name at least one of {', '.join(PROTOCOLS)}")
        for proto in self.protocols:
            check(proto in PROTOCOLS, "transfer.protocols", proto,
                  f"use one of {', '.join(PROTOCOLS)}")
        check(len(set(self.protocols)) == len(self.protocols), "transfer.protocols",
              self.protocols, "name each protocol once")
        check(self.train_images >= 10, "transfer.train_images", self.train_images,
              "use at least 10")
        check(self.test_images >= 10, "transfer.test_images", self.test_images, "use at least 10")
        check(len(self.fewshot_shots) >= 1 and all(
            isinstance(k, int) and not isinstance(k, bool) and k >= 1
            for k in self.fewshot_shots), "transfer.fewshot_shots", self.fewshot_shots,
            "use a list of positive integers, e.g. [1, 5, 10, 25]")
        check(self.fewshot_draws >= 1, "transfer.fewshot_draws", self.fewshot_draws,
              "use at least 1")
        check(self.fewshot_l2 >= 0, "transfer.fewshot_l2", self.fewshot_l2, "use a value >= 0")


@dataclass
class LoggingConfig:
    every_steps: int = 10
    tensorboard: bool = True
    progress: bool = True
    """A tqdm bar on rank 0 (off in Slurm logs unless asked)."""

    def __post_init__(self) -> None:
        check(self.every_steps >= 1, "logging.every_steps", self.every_steps, "use at least 1")


@dataclass
class RunConfig:
    """One fully resolved run: `<sweep>/runs/<run_id>/config.yaml`."""

    name: str = "run"
    """The run id (readable, unique within its sweep)."""
    seed: int = 0
    """Run seed: model init and data order (the world has its own, data.seed)."""
    precision: str = "fp32"
    """fp32, bf16 or fp16 autocast, or `auto`: bf16 where the training device runs it
    natively, else fp32 (fp16 on older GPUs); resolved at train time, recorded in
    state.json and the results' `precision` column (docs/design.md)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        check(self.precision in PRECISION_CHOICES, "precision", self.precision,
              f"use one of {', '.join(PRECISION_CHOICES)}")
        check(self.schema_version <= SCHEMA_VERSION, "schema_version", self.schema_version,
              f"this version reads schema <= {SCHEMA_VERSION}; upgrade wsl-scaling")
        world = self.resources.world_size
        check(self.optim.global_batch % world == 0, "optim.global_batch", self.optim.global_batch,
              f"use a multiple of the world size {world} (nodes x devices_per_node)")
        if "finetune" in self.transfer.protocols:
            ft = self.transfer.finetune
            check(ft.global_batch % world == 0, "transfer.finetune.global_batch",
                  ft.global_batch, f"use a multiple of the world size {world} (fine-tuning "
                  "runs on the run's ranks)")
            check(not ft.freeze_trunk or self.shard.strategy == "ddp",
                  "transfer.finetune.freeze_trunk", ft.freeze_trunk,
                  f"a frozen trunk is fine-tuned under ddp only, not shard.strategy="
                  f"{self.shard.strategy!r}: set shard.strategy: ddp or freeze_trunk: false")
            if ft.micro_batch is not None:
                check((ft.global_batch // world) % ft.micro_batch == 0,
                      "transfer.finetune.micro_batch", ft.micro_batch,
                      f"use a divisor of the per-rank batch {ft.global_batch // world}")
        if self.optim.micro_batch is not None:
            per_rank = self.optim.global_batch // world
            check(per_rank % self.optim.micro_batch == 0, "optim.micro_batch",
                  self.optim.micro_batch,
                  f"use a divisor of the per-rank batch {per_rank} (global_batch / world size)")
        devices = ("cpu", "cuda") if self.resources.device == "auto" else (self.resources.device,)
        reasons = [support_reason(self.shard.strategy, self.precision, d, self.shard.offload)
                   for d in devices]
        if all(reasons):  # `auto` devices are checked again once the device is known
            raise ConfigError(f"shard.strategy={self.shard.strategy!r} with "
                              f"precision={self.precision!r} on {'/'.join(devices)} is "
                              f"unsupported: {reasons[0]}")
        self._check_host_memory()  # the data's part; `scaling sweep` adds CPU ranks
        vocab = self.data.vocab
        if isinstance(vocab, str) and vocab.startswith("matched:"):
            target = vocab.split(":", 1)[1]
            check(bool(target), "data.vocab", vocab, "name a target, e.g. matched:fine")

    @property
    def cache_bytes_per_node(self) -> int:
        """Host bytes of the uint8 pretraining cache on one node (every rank holds one; a
        real source holds its decoded images twice while it stacks them)."""
        return self.data.images * self._cache_bytes_per_image() * self.resources.devices_per_node

    @property
    def index_bytes_per_node(self) -> int:
        """Host bytes of the per-image structures besides the cache on one node (every rank
        builds its own set): `index_bytes_per_image` x images x ranks."""
        return self.data.images * index_bytes_per_image(self.data, self.model.image_size) \
            * self.resources.devices_per_node

    def _cache_bytes_per_image(self) -> int:
        if not self.data.cache:
            return 0
        pixels = 3 * self.model.image_size ** 2
        return pixels if self.data.source == "synthetic" else 2 * pixels + 256

    def _check_host_memory(self) -> None:
        problem = host_memory_problem(self)
        if problem:
            raise ConfigError(problem)


# Host bytes each rank holds per pretraining image besides the pixel cache: kept indices,
# CSR offsets and tags (int64), the loader's cached epoch orders, and the peak while the
# set is built (data/pretrain.py, data/sources.py, data/loader.py). Measured peak RSS per
# image at 1M-4M synthetic / 100k real images, 16 px, with margin: synthetic 85-94 B
# (label noise: 397 B), webdataset 624 B (tag names and record refs as Python objects),
# hf 2047 B (it also keeps each record's encoded image: about 3 x side^2 bytes or less).
INDEX_BYTES = {"synthetic": 160, "webdataset": 1024, "hf": 1536}
LABEL_NOISE_BYTES = 512  # the dense per-slot arrays label noise draws


def index_bytes_per_image(data: DataConfig, image_size: int) -> int:
    """Host bytes per pretraining image on one rank besides the cache (see INDEX_BYTES)."""
    per = INDEX_BYTES[data.source] + (LABEL_NOISE_BYTES if data.label_noise > 0 else 0)
    if data.source == "hf":
        per += 3 * image_size ** 2
    return per


def field_hints(cls=RunConfig, prefix: str = "") -> dict[str, Any]:
    """{dotted field name: its type} of every leaf field (e.g. `model.width_per_group`)."""
    out: dict[str, Any] = {}
    for name, hint in field_types(cls).items():
        path = f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            out.update(field_hints(hint, path + "."))
        else:
            out[path] = hint
    return out


def field_paths(cls=RunConfig, prefix: str = "") -> list[str]:
    """Every dotted field name (e.g. `model.width_per_group`), for sweep-axis validation."""
    return list(field_hints(cls, prefix))


def merge_overrides(data: dict, overrides: dict, cls=RunConfig) -> dict:
    """`data` with `overrides` on top, section by section (a config section is merged, any
    other value, lists and mappings included, is replaced): how `scaling train --config
    FILE --optim.images_seen N` combines the file and the command line before the one
    reader sees them."""
    out = dict(data)
    types = field_types(cls)
    for key, value in overrides.items():
        hint = types.get(key)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict) \
                and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value, hint)
        else:
            out[key] = value
    return out


def check_field_path(dotted: str) -> None:
    """Refuse a dotted name that is not a config field, naming the closest valid one."""
    paths = field_paths()
    if dotted not in paths:
        raise ConfigError(f"unknown field {dotted!r}: did you mean {closest(dotted, paths)!r}?")


HASHED_ONLY_WHEN_SET: dict[tuple[str, ...], Any] = {
    ("transfer", "finetune", "freeze_trunk"): False,
}
"""Fields added after runs and registered studies were hashed, with the value that does what
the runs before them did: left out of `config_hash` at that value, so every earlier run
folder and registered design (records/registry.yaml) keeps its hash; set, they count."""


def config_hash(config: RunConfig) -> str:
    """Stable hash of everything that changes a run's results (`name` excluded)."""
    payload = to_dict(config)
    for path, default in HASHED_ONLY_WHEN_SET.items():
        *parents, leaf = path
        section = payload
        for key in parents:
            section = section.get(key, {})
        if leaf in section and section[leaf] == default:
            del section[leaf]
    payload.pop("name", None)
    payload.pop("resources", None)  # where it runs does not change what it computes
    payload.pop("logging", None)
    payload["data"].pop("max_corrupt_frac", None)  # a guard: it never changes a result
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_run_config(data: Optional[dict]) -> RunConfig:
    """The one reader of a run config (docs/design.md, "Run config"): `scaling sweep`,
    `scaling train`/`transfer` (file and command-line values merged), the Slurm and local
    executors (`slurm.tasks.run_resources`) and `scaling collect` all build it here, so a
    value is accepted or refused, with the same one-line ConfigError, by all of them."""
    return from_dict(RunConfig, data)


def load_run_config(path: Union[str, Path]) -> RunConfig:
    """`read_run_config` of a config.yaml."""
    return read_run_config(load_yaml(path))


def host_memory_problem(config: RunConfig, rank_bytes: float = 0.0) -> Optional[str]:
    """Why a node cannot hold the run's data (uint8 cache and per-image index on every
    rank) plus `rank_bytes` (the ranks' own memory on CPU, which `scaling sweep` knows
    from the estimator) within resources.mem_gb; None when it fits. The fixes are
    computed for these figures, so each one makes the check pass."""
    budget = config.resources.mem_gb * 2 ** 30
    cache, index = config.cache_bytes_per_node, config.index_bytes_per_node
    total = cache + index + rank_bytes
    if total <= budget:
        return None
    images, ranks = config.data.images, config.resources.devices_per_node
    per_image = (cache + index) / images
    fixes = []
    most = int((budget - rank_bytes) // per_image)
    if most >= 1:
        fixes.append(f"use at most {most} images")
    if cache and index + rank_bytes <= budget:
        fixes.append("set data.cache=false")
    fixes.append(f"raise resources.mem_gb to {math.ceil(total / 2 ** 30)}")
    def gib(n: float) -> str:
        return f"{n / 2 ** 30:.1f}" if n >= 2 ** 30 else f"{n / 2 ** 30:.3g}"

    parts = f"{gib(index)} GiB of per-image index"
    if cache:
        parts = (f"{gib(cache)} GiB of uint8 cache (3 x {config.model.image_size}^2 bytes an "
                 "image) and " + parts)
    if rank_bytes:
        parts += f", plus {gib(rank_bytes)} GiB for the ranks themselves on CPU"
    if cache + index > budget:  # the data alone does not fit: its size is the problem
        head = f"data.images={images} is invalid: on {ranks} rank(s) per node it takes"
    else:
        head = (f"resources.mem_gb={config.resources.mem_gb} is too small for this run: on "
                f"{ranks} rank(s) per node it takes")
    return (f"{head} {parts}, more than resources.mem_gb={config.resources.mem_gb}: "
            f"{', or '.join(fixes)}")
