"""Fine-tuning runs through the engine's one loop (`Trainer`, scaling/finetune.py), so it has
pretraining's guards: the fp16 skip limit, the per-step divergence check and the
finite-weight check before every checkpoint (the verified resume is tested beside the
protocol, in test_transfer.py). Each fails on a hand-written fine-tuning loop that checks
only after its last step."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import scaling.engine as E
import scaling.transfer as T
from contract.config import load_run_config
from contract.errors import RunError
from contract.runfolder import read_state
from tests.scaling.test_transfer import FT, clone

STEPS = 20  # 640 images at a global batch of 32


def _finetune_run(trained, tmp_path, precision: str = "fp32", every: int = 2, **finetune):
    run = clone(trained, tmp_path, protocols=["finetune"],
                finetune={**FT, "images_seen": 32 * STEPS, **finetune})
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["precision"] = precision
    config["checkpoint"] = {"every_steps": every, "keep_last": 2}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def _fails(run, match: str) -> str:
    with pytest.raises(RunError, match=match) as caught:
        T.transfer(load_run_config(run / "config.yaml"), run)
    assert read_state(run)["transfer"] == "failed"
    assert not (run / "transfer" / "novel__finetune.json").exists()
    return str(caught.value)


def test_fp16_skip_limit_stops_a_finetune_that_keeps_overflowing(trained, tmp_path):
    run = _finetune_run(trained, tmp_path, "fp16", lr_per_256=1e12, max_skipped_steps=3)
    error = _fails(run, "fp16 loss scaling skipped 3 steps in a row")
    assert "transfer.finetune.max_skipped_steps=3" in error
    assert "lower transfer.finetune.lr_per_256" in error


def test_a_diverging_finetune_stops_at_the_step_not_after_the_loop(trained, tmp_path):
    run = _finetune_run(trained, tmp_path, lr_per_256=1e12)
    error = _fails(run, r"the loss is not finite at step \d+ of 20")
    step = int(error.split("at step ")[1].split(" ")[0])
    assert step < STEPS, error          # caught where it happened, not after the last step
    assert "lower transfer.finetune.lr_per_256" in error
    ckpts = run / "transfer" / "finetune" / "novel" / "checkpoints"
    done = sorted(int(p.parent.name) for p in ckpts.glob("*/COMPLETE"))
    assert all(s < step for s in done), (done, step)  # none written from the diverged step


def test_non_finite_weights_never_reach_a_finetune_checkpoint(trained, tmp_path,
                                                              monkeypatch):
    step_once = E.Trainer.optimizer_step

    def overflowing(self) -> None:  # a finite loss, then an update that overflows
        step_once(self)
        if self.step == 1:
            with torch.no_grad():
                weight = next(self.strategy.model.parameters())
                weight[(0,) * weight.dim()] = float("inf")

    monkeypatch.setattr(E.Trainer, "optimizer_step", overflowing)
    run = _finetune_run(trained, tmp_path, every=1)   # a checkpoint is due after step 1
    _fails(run, "the weights are not finite at step 1: training diverged, no checkpoint")
    assert not list((run / "transfer").glob("finetune/novel/checkpoints/*/COMPLETE"))


def test_a_finetune_result_reports_its_schedule_and_skipped_steps(trained, tmp_path):
    run = _finetune_run(trained, tmp_path)
    T.transfer(load_run_config(run / "config.yaml"), run)
    result = json.loads((run / "transfer" / "novel__finetune.json").read_text())
    assert (result["steps"], result["images_seen"], result["skipped_steps"]) == (
        STEPS, 32 * STEPS, 0)
    assert result["resumed_from_step"] == 0 and result["precision"] == "fp32"
    assert result["final_loss"] is not None and result["final_loss"] > 0
