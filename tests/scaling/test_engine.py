"""The training engine, for real: subprocesses, 2 gloo ranks, kills and signals."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

from tests.helpers.engine import env, losses, make_run, state, train, train_cmd

pytestmark = pytest.mark.integration  # every test here starts a scaling process


def _cached_peak(threads: int) -> float:
    from scaling.telemetry import _host_key, peak_cache_path

    return json.loads(peak_cache_path().read_text())[_host_key(threads)]["flops"]


def test_single_rank_run_writes_the_run_folder_contract(tmp_path):
    run = make_run(tmp_path)
    train(run)
    st = state(run)
    assert st["train"] == "done" and st["attempts"] == 1 and st["images_seen"] == 320
    records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 21))
    for key in ("step", "images_seen", "loss", "lr", "images_per_s", "tflops_per_s", "mfu",
                "max_mem_bytes", "wall_s"):
        assert key in records[-1]
    # MFU = achieved FLOP/s over the host's cached quiet peak (tests/conftest.py)
    peak = _cached_peak(threads=1)
    assert records[-1]["mfu"] == pytest.approx(records[-1]["tflops_per_s"] * 1e12 / peak,
                                               rel=1e-9)
    _check_throughput_figures(run, records)
    assert (run / "checkpoints" / "000000020" / "COMPLETE").is_file()
    assert len(list((run / "checkpoints").iterdir())) == 2  # keep_last
    trunk = torch.load(run / "final" / "trunk.pt", weights_only=True)
    assert trunk and not any(k.startswith("fc.") for k in trunk)
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["end"] and prov["versions"]["torch"] == torch.__version__
    # a finished run is never trained again
    again = train(run)
    assert "already done" in again.stdout and state(run)["attempts"] == 1


def _check_throughput_figures(run, records):
    """tflops_per_s is 3 x forward FLOPs x images/s of this very model, and mfu divides it
    by one plausible per-thread peak (the same at every step): checks a wrong FLOP count or
    a wrong peak fails, unlike `0 < mfu < 1`."""
    import pytest

    from contract.config import load_run_config
    from models import create_model, forward_flops
    from scaling.recipe import model_kwargs

    config = load_run_config(run / "config.yaml")
    classes = len(json.loads((run / "final" / "model.json").read_text())["hashtags"])
    with torch.device("meta"):
        model = create_model(config.model.arch, num_classes=classes, **model_kwargs(config))
    flops = forward_flops(model, config.model.image_size)
    peaks = set()
    for r in records:
        assert r["tflops_per_s"] * 1e12 == pytest.approx(3 * flops * r["images_per_s"], rel=1e-9)
        peaks.add(round(r["tflops_per_s"] * 1e12 / r["mfu"], -3))
    assert len(peaks) == 1, peaks  # one measured peak for the run
    assert 1e9 < peaks.pop() < 1e13  # FLOP/s of one CPU thread (cpus_per_rank: 1)


def test_loss_falls_over_training(tmp_path):
    run = make_run(tmp_path, optim__images_seen=960)
    train(run)
    curve = losses(run)
    assert sum(curve[-5:]) / 5 < sum(curve[:5]) / 5 - 0.1


@pytest.mark.slow
def test_ddp_two_ranks_match_one_rank_accumulating_the_same_micro_batches(tmp_path):
    # 2 ranks see slices [0:8] and [8:16] of each global batch of 16; one rank with
    # micro_batch 8 runs the same two slices through batch norm, so losses must agree.
    two = make_run(tmp_path, "two", resources__devices_per_node=2)
    one = make_run(tmp_path, "one", optim__micro_batch=8)
    train(two, 2)
    train(one, 1)
    a, b = losses(two), losses(one)
    assert len(a) == len(b) == 20
    assert a == pytest.approx(b, rel=1e-5)
    assert a[0] != a[-1]


def _newest_complete(run) -> int:
    return max(int(p.name) for p in (run / "checkpoints").iterdir()
               if (p / "COMPLETE").is_file())


@pytest.mark.slow
def test_resume_after_kill_is_exact(tmp_path):
    ref = make_run(tmp_path, "ref")
    train(ref)
    run = make_run(tmp_path, "killed")
    proc = subprocess.Popen(train_cmd(run), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # a loaded machine can take minutes to import torch
    while time.time() < deadline:  # kill -9 once a checkpoint exists and steps go on
        metrics = run / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 12:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert state(run)["train"] == "running"
    newest = _newest_complete(run)
    assert newest >= 5
    out = train(run).stdout
    # a resume, not a restart from step 0 (deleting checkpoints/ here fails this)
    assert state(run)["resumed_from"] == newest
    assert f"resumed from checkpoint {newest:09d} at step {newest}" in out
    assert state(run)["attempts"] == 2 and state(run)["train"] == "done"
    assert losses(run) == losses(ref)  # bit for bit


@pytest.mark.slow
def test_sigusr2_checkpoints_marks_preempted_and_resumes_cleanly(tmp_path):
    ref = make_run(tmp_path, "ref")
    train(ref)
    run = make_run(tmp_path, "pre")
    proc = subprocess.Popen(train_cmd(run), env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600  # a loaded machine can take minutes to import torch
    while time.time() < deadline:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 7:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR2)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, out
    st = state(run)
    assert st["train"] == "preempted"
    stopped_at = len(losses(run))
    assert (run / "checkpoints" / f"{stopped_at:09d}" / "COMPLETE").is_file()
    out = train(run).stdout
    assert state(run)["resumed_from"] == stopped_at  # resumed where it stopped
    assert f"resumed from checkpoint {stopped_at:09d} at step {stopped_at}" in out
    assert state(run)["train"] == "done" and state(run)["attempts"] == 2
    assert losses(run) == losses(ref)


def test_sigterm_marks_cancelled(tmp_path):
    run = make_run(tmp_path, "term", optim__images_seen=3200)
    proc = subprocess.Popen(train_cmd(run), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # a loaded machine can take minutes to import torch
    while time.time() < deadline:
        if (run / "metrics.jsonl").exists():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) != 0
    assert state(run)["train"] == "cancelled"
