"""`deepspeed`: ZeRO stages 1, 2 and 3 through `deepspeed.initialize`.

The ds_config is generated from the run config (batch sizes, ZeRO stage, precision,
offload), then `shard.deepspeed_overrides` - keys validated at config load - is merged on
top. Only DeepSpeed's public config is used: bucket sizes (reduce, all-gather, ZeRO-3
prefetch) and ZeRO-3's live-parameter and reuse-distance limits are the model-derived
bucket (scaling/memory.py `bucket_elements`), not DeepSpeed's 5e8/1e9-element defaults,
which exceed the models here (with a reuse distance larger than the model, ZeRO-3 keeps
every parameter gathered from forward until backward). What DeepSpeed then holds is
measured, not patched: in fp32 ZeRO-3 keeps an fp32 master copy of the partition beside
the fp32 partition (the strategy table's `fp32_master`). The optimizer is ours (the
paper's SGD), handed to DeepSpeed, so the lr schedule is driven on it exactly as for every
other strategy.

Precision: bf16 is autocast over fp32 weights (DeepSpeed's `bf16` mode casts batch norm
too, which CPU kernels reject), through DeepSpeed's `torch_autocast` section: its engine
otherwise switches a CUDA autocast off inside its forward (measured on an H200: "bf16" ran
in fp32 at 0.54x the plain loop and twice its memory). fp16 is refused at config load on
both devices: DeepSpeed's fp16 mode did not train on the H200 (README's support matrix).

Checkpoints are DeepSpeed's own (`save_checkpoint`), one shard per rank; they do not
reshard to another world size without DeepSpeed's universal-checkpoint conversion, and the
engine refuses such a resume naming it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import torch

from contract.config import RunConfig
from models import Trunk
from scaling import memory
from scaling.strategies.base import OptimizerFactory, Strategy, contiguous_on, ensure_process_group

TAG = "ds"


def bucket_elements(model: torch.nn.Module) -> int:
    """Communication bucket size derived from the model (scaling/memory.py sizes it)."""
    return memory.bucket_elements(sum(p.numel() for p in model.parameters()))


def ds_config(config: RunConfig, world_size: int, bucket: int = 2 ** 22) -> dict:
    """The generated ds_config (before overrides)."""
    optim, shard = config.optim, config.shard
    per_rank = optim.global_batch // world_size
    micro = optim.micro_batch or per_rank
    zero: dict[str, object] = {"stage": shard.zero_stage, "overlap_comm": False,
                               "contiguous_gradients": True, "reduce_bucket_size": bucket,
                               "allgather_bucket_size": bucket}
    if shard.zero_stage == 3:
        zero.update({"stage3_prefetch_bucket_size": bucket,
                     "stage3_param_persistence_threshold": 0,
                     "stage3_max_reuse_distance": bucket, "stage3_max_live_parameters": bucket})
    if shard.offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if shard.zero_stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    out = {"train_batch_size": optim.global_batch, "train_micro_batch_size_per_gpu": micro,
           "gradient_accumulation_steps": per_rank // micro, "zero_optimization": zero,
           "zero_allow_untested_optimizer": True, "gradient_clipping": 0.0,
           "steps_per_print": 10 ** 9, "wall_clock_breakdown": False}
    if config.precision == "bf16":
        # DeepSpeed's engine turns a CUDA autocast entered outside it off inside its forward
        # unless this section asks for it (without it "bf16" ran in fp32 on a GPU). No
        # module communicates in bf16: gradients are reduced in fp32, as under every other
        # strategy.
        out["torch_autocast"] = {"enabled": True, "dtype": "bfloat16",
                                 "lower_precision_safe_modules": []}
    return _merge(out, shard.deepspeed_overrides)


def _merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class DeepSpeedStrategy(Strategy):
    name = "deepspeed"
    reshardable = False
    reshard_hint = ("convert it first: python -m deepspeed.checkpoint.ds_to_universal "
                    "--input_folder CKPT/ds --output_folder CKPT/ds_universal (ZeRO "
                    "universal checkpoint), or resume at the world size it was written at")

    def wrap(self, model: torch.nn.Module, make_optimizer: OptimizerFactory) -> torch.nn.Module:
        import deepspeed

        ensure_process_group(self.env)
        # DeepSpeed reads its rank from the launcher's variables, which a single process
        # (or Slurm's srun) may not set
        for key, value in (("LOCAL_RANK", self.env.local_rank), ("RANK", self.env.rank),
                           ("WORLD_SIZE", self.env.world_size)):
            os.environ.setdefault(key, str(value))
        # ZeRO flattens and broadcasts parameters as bytes: they must be contiguous
        self._module = contiguous_on(model, self.env.device)
        base = make_optimizer(self._module)
        self.ds_config = ds_config(self.config, torch.distributed.get_world_size(),
                                   bucket_elements(self._module))
        engine, zero_opt, _, _ = deepspeed.initialize(
            model=self._module, optimizer=base, config=self.ds_config,
            dist_init_required=False)
        self.engine = engine
        self.zero_optimizer = zero_opt
        self.optimizer = base  # the scheduler drives lr on the groups ZeRO steps with
        self.model = engine
        self.scaler = self.make_scaler()  # disabled: DeepSpeed's fp16 is refused at config load
        return engine

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    def no_sync(self, sync: bool):
        self.engine.set_gradient_accumulation_boundary(sync)
        return super().no_sync(sync)

    def backward(self, loss: torch.Tensor) -> None:
        # the loop already scales each micro-batch's loss by micro / per-rank batch
        self.engine.backward(loss, scale_wrt_gas=False)

    def step(self) -> bool:
        before = self.engine.skipped_steps
        self.engine.step()
        return self.engine.skipped_steps == before

    def save(self, directory: Path) -> None:
        self.engine.save_checkpoint(str(directory), tag=TAG, save_latest=False)
        if self.env.is_main:
            (directory / "ds_config.json").write_text(json.dumps(self.ds_config, indent=1))

    def load(self, directory: Path) -> None:
        path, _ = self.engine.load_checkpoint(str(directory), tag=TAG,
                                              load_optimizer_states=True,
                                              load_lr_scheduler_states=False)
        if path is None:
            raise RuntimeError(f"DeepSpeed found no checkpoint under {directory}/{TAG}")

    def trunk_state_dict(self) -> dict[str, torch.Tensor]:
        if self.config.shard.zero_stage == 3:
            import deepspeed

            params = list(self._module.parameters())
            with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
                full = {k: v.detach().cpu().clone() for k, v in self._module.state_dict().items()}
            if not self.env.is_main:
                return {}
        else:
            full = self._module.state_dict()
        trunk = cast(Trunk, self._module)
        return {k: v for k, v in full.items() if trunk.is_trunk_key(k)}

    def state_tensors(self) -> dict[str, list]:
        """Parameter partitions and flat buffers (master copies included), everything
        else the ZeRO optimizer holds (gradient partitions, buckets), optimizer state."""
        opt = self.zero_optimizer
        params = [getattr(p, "ds_tensor", p) for p in self._module.parameters()]
        for name in ("fp16_partitioned_groups_flat", "fp32_partitioned_groups_flat",
                     "single_partition_of_fp32_groups", "bit16_groups_flat"):
            params += list(getattr(opt, name, None) or [])
        optim_state = [v for s in self.optimizer.state.values() for v in s.values()]
        counted = {_key(t) for t in params + optim_state if isinstance(t, torch.Tensor)}
        # everything else the ZeRO optimizer holds: gradient partitions, buckets, buffers
        others = [t for t in _tensors_in(opt) if _key(t) not in counted]
        others += [p.grad for p in self._module.parameters() if p.grad is not None]
        return {"param": params, "grad": others, "optim": optim_state}


def _key(t: torch.Tensor):
    return (t.untyped_storage().data_ptr(), t.device)


def _tensors_in(obj, depth: int = 3, seen=None) -> list[torch.Tensor]:
    """Tensors reachable from an object's attributes, lists and dicts (a few levels)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        out = [obj]
        if obj.grad is not None:
            out.append(obj.grad)
        return out
    if depth == 0 or isinstance(obj, (torch.nn.Module, torch.optim.Optimizer, str, bytes)):
        return []
    items: Iterable[object]
    if isinstance(obj, dict):
        items = obj.values()
    elif isinstance(obj, (list, tuple)):
        items = obj
    elif hasattr(obj, "__dict__") and obj.__class__.__module__.startswith("deepspeed"):
        items = vars(obj).values()
    else:
        return []
    out = []
    for item in items:
        out += _tensors_in(item, depth - 1, seen)
    return out
