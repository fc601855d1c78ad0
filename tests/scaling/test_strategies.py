"""Every strategy against the ddp reference, for real: 2 gloo ranks through `scaling train`.

One module-scoped set of 20-step runs (TINY config) feeds the parity, memory, bf16 and
resume checks, so each configuration is trained once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import torch
import yaml

from engine_helpers import env, losses, make_run, state, train, train_cmd

# name -> shard section (every strategy, and both FSDP2 modes)
STRATEGIES = {
    "fsdp2": {"strategy": "fsdp2"},
    "fsdp2_zero2": {"strategy": "fsdp2", "reshard_after_forward": False},
    "fsdp1": {"strategy": "fsdp1"},
    "deepspeed_z3": {"strategy": "deepspeed", "zero_stage": 3},
    "deepspeed_z2": {"strategy": "deepspeed", "zero_stage": 2},
    "fairscale_z2": {"strategy": "fairscale", "zero_stage": 2},
}
PARITY_REL = 1e-5


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("strategies")
    out = {}
    for name, shard in {"ddp": {"strategy": "ddp"}, **STRATEGIES}.items():
        run = make_run(root, name, resources__devices_per_node=2, shard=shard)
        train(run, 2)
        out[name] = run
    bf16 = make_run(root, "ddp_bf16", resources__devices_per_node=2, precision="bf16")
    train(bf16, 2)
    out["ddp_bf16"] = bf16
    return out


def _max_rel(a, b):
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_strategy_matches_ddp_loss_at_every_step(runs, name):
    ref, got = losses(runs["ddp"]), losses(runs[name])
    assert len(got) == len(ref) == 20
    print(f"{name}: max relative loss difference vs ddp {_max_rel(got, ref):.2e}")
    assert got == pytest.approx(ref, rel=PARITY_REL)
    assert sum(got[-5:]) / 5 < sum(got[:5]) / 5 - 0.05  # and the loss falls (with a margin)
    assert state(runs[name])["train"] == "done"
    trunk = torch.load(runs[name] / "final" / "trunk.pt", weights_only=True)
    ddp_trunk = torch.load(runs["ddp"] / "final" / "trunk.pt", weights_only=True)
    assert trunk.keys() == ddp_trunk.keys()
    for key in trunk:
        if "running" not in key and "num_batches" not in key:
            torch.testing.assert_close(trunk[key], ddp_trunk[key], rtol=1e-3, atol=1e-5)


def test_bf16_ends_within_2_percent_of_fp32(runs):
    fp32, bf16 = losses(runs["ddp"]), losses(runs["ddp_bf16"])
    assert abs(bf16[-1] - fp32[-1]) / fp32[-1] < 0.02


def _state_bytes(run):
    report = json.loads((run / "memory.json").read_text())
    return [sum(r[k] for k in ("param_bytes", "grad_bytes", "optim_bytes"))
            for r in report["per_rank"]]


@pytest.mark.parametrize("name", ["fsdp2", "deepspeed_z3", "fsdp1"])
def test_zero3_holds_at_most_055_of_ddp_state_per_rank(runs, name):
    ddp = max(_state_bytes(runs["ddp"]))
    for held in _state_bytes(runs[name]):
        print(f"{name}: {held} / {ddp} = {held / ddp:.3f} of ddp")
        assert held <= 0.55 * ddp


def _children(pid):
    path = f"/proc/{pid}/task/{pid}/children"
    return [int(p) for p in open(path).read().split()] if os.path.exists(path) else []


def _kill9(proc):
    """kill -9 every rank and the launcher (torchrun starts ranks in their own sessions)."""
    for pid in _children(proc.pid):
        os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait()


def _wait_lines(run, n, proc):
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{run.name}: never reached {n} logged steps")


def test_fsdp2_kill9_then_resume_is_bit_identical(runs, tmp_path):
    run = make_run(tmp_path, "killed", resources__devices_per_node=2,
                   shard=STRATEGIES["fsdp2"])
    proc = subprocess.Popen(train_cmd(run, 2), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_lines(run, 12, proc)
    _kill9(proc)  # both ranks and the agent, mid-training
    assert state(run)["train"] == "running"
    train(run, 2)
    assert state(run)["train"] == "done" and state(run)["attempts"] == 2
    assert losses(run) == losses(runs["fsdp2"])  # bit for bit


def test_deepspeed_sigusr2_preempts_and_resumes_cleanly(runs, tmp_path):
    run = make_run(tmp_path, "pre", resources__devices_per_node=2,
                   shard=STRATEGIES["deepspeed_z3"])
    proc = subprocess.Popen(train_cmd(run, 2), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_lines(run, 7, proc)
    for pid in _children(proc.pid):  # what srun does: the signal reaches every rank
        os.kill(pid, signal.SIGUSR2)
    assert proc.wait(timeout=180) != 0
    assert state(run)["train"] == "preempted"
    stopped = len(losses(run))
    assert stopped < 20 and (run / "checkpoints" / f"{stopped:09d}" / "COMPLETE").is_file()
    train(run, 2)
    assert state(run)["train"] == "done" and state(run)["attempts"] == 2
    assert losses(run) == losses(runs["deepspeed_z3"])

    # the same checkpoint cannot be resumed at another world size: the error says how
    other = make_run(tmp_path, "other", resources__devices_per_node=1,
                     shard=STRATEGIES["deepspeed_z3"])
    shutil.copytree(run / "checkpoints", other / "checkpoints")
    proc = train(other, 1, check=False)
    assert proc.returncode != 0
    assert "ds_to_universal" in state(other)["error"]


def test_fsdp2_resumes_from_two_ranks_on_one(runs, tmp_path):
    # a 2-rank checkpoint at step 10: kill a 2-rank run just after it
    run = make_run(tmp_path, "shrink", resources__devices_per_node=2,
                   shard=STRATEGIES["fsdp2"], checkpoint={"every_steps": 10, "keep_last": 2})
    proc = subprocess.Popen(train_cmd(run, 2), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_lines(run, 11, proc)
    _kill9(proc)
    config = yaml.safe_load((run / "config.yaml").read_text())
    # one rank, two micro-batches of 8: the same batch-norm groups as two ranks of 8
    config["resources"]["devices_per_node"] = 1
    config["optim"]["micro_batch"] = 8
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    train(run, 1)
    ref, got = losses(runs["fsdp2"]), losses(run)
    assert len(got) == 20 and got[:10] == ref[:10]
    # batch-norm running statistics were rank 0's and the reductions regroup: tolerance
    assert got[10:] == pytest.approx(ref[10:], rel=1e-4)
    print(f"2 -> 1 resume: max relative difference {_max_rel(got, ref):.2e}")
