"""`scaling run --local` runs one process per run; a failed checkpoint write fails the run
and the command, and neither the working folder's packages nor other users' write access
reach a run."""

from __future__ import annotations

import json
import os
import resource
import socket
import stat
import subprocess
import time

import pytest

from tests.helpers.console import (
    main,
    one_error_line,
    tiny_config,
)
from tests.helpers.engine import env, make_run, state, train
from tests.helpers.slurm_runs import cli_argv, scaling, write_sweep, write_sweep_file

pytestmark = pytest.mark.integration  # every test here starts a scaling process


def _steps(run):
    return [json.loads(line)["step"] for line in
            (run / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- 2. a per-run lock

@pytest.mark.slow
def test_two_local_executors_never_train_one_run_at_once(tmp_path):
    # 900 steps: long enough that the second executor (which pays a torch import first)
    # still meets a live first one, also on a loaded machine (300 steps once let the first
    # finish both phases before the second got there)
    sweep = write_sweep(tmp_path, "twice", {"r0": {"optim.images_seen": 14400,
                                                   "transfer.floor": False}})
    run = sweep / "runs" / "r0"
    first = subprocess.Popen(cli_argv("run", sweep, "--local", "--progress", "false"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env())
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "metrics.jsonl").exists():
        assert first.poll() is None, first.communicate()
        time.sleep(0.05)
    second = scaling("run", sweep, "--local", "--progress", "false", check=False, timeout=600)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, out + err
    assert second.returncode != 0
    line = one_error_line(second)
    assert "r0: already being run by pid" in line and socket.gethostname() in line
    assert _steps(run) == list(range(1, 901))  # one writer: every step once
    st = state(run)
    assert (st["train"], st["transfer"], st["attempts"]) == ("done", "done", 1)
    # the second executor was refused in train, or - when the first had finished training
    # by the time the second got the lock - found train done and was refused in transfer:
    # either way each phase really ran exactly once
    train_log = (sweep / "logs" / "r0.train.log").read_text()
    assert train_log.count("r0: starting at step 0") == 1, train_log
    assert "resumed from" not in train_log
    transfer_log = (sweep / "logs" / "r0.transfer.log").read_text()
    ran = transfer_log.count("wsl-scaling: end rc=0 phase=transfer") - \
        transfer_log.count("transfer already done, nothing to do")
    assert ran == 1, transfer_log
    assert not (run / "run.lock").exists()


def test_a_live_lock_refuses_and_a_dead_holders_lock_is_taken_over(tmp_path):
    from scaling.runlock import _proc_start

    run = make_run(tmp_path, "r")
    holder = subprocess.Popen(["sleep", "300"])
    try:
        (run / "run.lock").write_text(json.dumps(
            {"pid": holder.pid, "host": socket.gethostname(), "start": _proc_start(holder.pid),
             "phase": "train", "since": "2026-01-01T00:00:00+0000"}))
        proc = train(run, check=False)
        assert proc.returncode == 75
        assert f"r: already being run by pid {holder.pid}" in one_error_line(proc)
        assert not (run / "state.json").exists() and not (run / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    proc = train(run)  # the holder is gone: its lock is stale
    assert state(run)["train"] == "done" and state(run)["attempts"] == 1
    assert not (run / "run.lock").exists()


# ---------------------------------------------------------------- 6. disk full at a checkpoint

def _small_files():
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))  # a checkpoint is ~550 kB


def test_a_checkpoint_that_cannot_be_written_fails_the_run_and_run_local(tmp_path):
    sweep = write_sweep(tmp_path, "full", {"r0": {"transfer.floor": False}})
    run = sweep / "runs" / "r0"
    proc = scaling("run", sweep, "--local", "--progress", "false", check=False, timeout=600,
                   preexec_fn=_small_files)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    line = one_error_line(proc)
    assert "r0: checkpoint" in line and "could not be written (" in line and "MiB free" in line
    st = state(run)
    assert st["train"] == "failed" and "could not be written" in st["error"]
    assert st["transfer"] == "pending" and not (run / "final").exists()
    # no partial checkpoint left behind to be mistaken for one
    assert not [p for p in (run / "checkpoints").iterdir() if not (p / "COMPLETE").exists()]


# ---------------------------------------------------------------- 8 and 7 (permissions)

SHADOW = "open({sentinel!r}, 'w').write('imported from the working folder')\n" \
         "raise ImportError('the working folder shadowed the package')\n"


@pytest.mark.slow
def test_run_local_neither_imports_from_the_cwd_nor_makes_run_files_others_can_write(
        tmp_path, capsys):
    user = tmp_path / "work"
    sentinel = tmp_path / "SHADOWED"
    for package in ("data", "models"):
        (user / package).mkdir(parents=True)
        (user / package / "__init__.py").write_text(SHADOW.format(sentinel=str(sentinel)))
    sweep_file = write_sweep_file(tmp_path / "s.yaml", "cwd", tiny_config(**{
        "transfer.floor": False}), axes={"model.width_per_group": [4]})
    old = os.umask(0)  # a permissive umask must not leak into the run folders
    try:
        assert main(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps").returncode == 0
    finally:
        os.umask(old)
    sweep = tmp_path / "sweeps" / "cwd"
    proc = scaling("run", sweep, "--local", "--progress", "false", check=False, timeout=600,
                   cwd=user,
                   preexec_fn=lambda: os.umask(0))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not sentinel.exists()
    st = state(sweep / "runs" / "w4")
    assert (st["train"], st["transfer"]) == ("done", "done")
    writable = [str(p.relative_to(sweep)) for p in [sweep / "runs", *(sweep / "runs").rglob("*")]
                if not p.is_symlink() and p.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)]
    assert writable == []
