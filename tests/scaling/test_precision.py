"""Precision: the measured support matrix (every cell through the real strategies in one
2-rank process group), refusals at config load, and fp16 overflow handling."""

from __future__ import annotations

import json

import pytest

from contract.config import RunConfig, from_dict, support_matrix
from contract.errors import ConfigError
from contract.strategies import TABLE
from tests.helpers.engine import TINY, cell, make_run, run_cells, state, train


def _stage(strategy: str) -> dict:
    """The most-sharded stage a strategy accepts (the config default, 3, where it reads it)."""
    spec = TABLE[strategy]
    return {"zero_stage": max(spec.stages)} if spec.reads_stage else {}


def _cells(device: str) -> list[str]:
    return [cell({"strategy": s, **_stage(s)}, p)
            for (s, p, d), reason in support_matrix().items() if d == device and reason is None]


def measure(device: str, nproc: int) -> dict:
    return run_cells(_cells(device), device, nproc, steps=3)


def _check(results: dict) -> None:
    failed = {k: v.get("error") for k, v in results.items() if not v["ok"]}
    assert not failed, failed
    ref = results["ddp:fp32"]["losses"]
    computed = {"fp32": ["torch.float32"], "bf16": ["torch.bfloat16"], "fp16": ["torch.float16"]}
    for name, res in results.items():
        # the precision asked for is the one convolutions ran in (a wrapper that turns the
        # engine's autocast off inside itself would train in fp32 and still match the losses)
        assert res["conv_dtypes"] == computed[name.split(":")[1]], name
        # the same 3 steps: every cell is close to fp32 ddp, fp32 cells to 1e-5
        tol = 1e-5 if ":fp32" in name else 2e-2
        assert res["losses"] == pytest.approx(ref, rel=tol), name


@pytest.mark.slow
def test_every_supported_cpu_cell_trains_on_two_ranks():
    results = measure("cpu", 2)
    assert set(results) == set(_cells("cpu"))
    _check(results)


@pytest.mark.gpu
def test_every_supported_gpu_cell_trains():
    _check(measure("cuda", 1))


def test_unsupported_cells_refuse_at_config_load():
    for (strategy, precision, device), reason in support_matrix().items():
        data = json.loads(json.dumps(TINY))
        data.update(precision=precision, shard={"strategy": strategy, **_stage(strategy)})
        data["resources"]["device"] = device
        if reason is None:
            from_dict(RunConfig, data)
            continue
        with pytest.raises(ConfigError, match="unsupported") as info:
            from_dict(RunConfig, data)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("shard, fragment", [
    ({"strategy": "fairscale", "zero_stage": 3}, "KeyError 'all_gather'"),
    ({"strategy": "deepspeed", "deepspeed_overrides": {"train_batch_size": 64}},
     "optim.global_batch"),
    ({"strategy": "deepspeed",
      "deepspeed_overrides": {"zero_optimization": {"reduce_bucket": 1}}},
     "reduce_bucket_size"),
    # DeepSpeed's own precision sections would bypass the refusal of its fp16 mode and the
    # autocast the strategy sets: the run config's precision owns them
    ({"strategy": "deepspeed", "deepspeed_overrides": {"fp16": {"initial_scale_power": 8}}},
     "use precision instead"),
    ({"strategy": "deepspeed", "deepspeed_overrides": {"torch_autocast": {"enabled": False}}},
     "use precision instead"),
    ({"strategy": "ddp", "offload": True}, "offload"),
])
def test_bad_shard_settings_refuse_with_one_line(shard, fragment):
    data = json.loads(json.dumps(TINY))
    data["shard"] = shard
    with pytest.raises(ConfigError) as info:
        from_dict(RunConfig, data)
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.integration
def test_fp16_run_that_keeps_overflowing_stops_with_a_clear_error(tmp_path):
    # a learning rate that blows the weights up: every later step overflows in fp16
    run = make_run(tmp_path, "boom", precision="fp16", optim__lr_per_256=1e12,
                   optim__max_skipped_steps=3)
    proc = train(run, 1, check=False)
    assert proc.returncode != 0
    error = state(run)["error"]
    assert "skipped 3 steps in a row" in error and "precision=bf16" in error


@pytest.mark.integration
def test_fp16_skipped_steps_are_logged(tmp_path):
    run = make_run(tmp_path, "fp16", precision="fp16", optim__images_seen=64)
    train(run, 1)
    records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("skipped_steps" in r for r in records)
