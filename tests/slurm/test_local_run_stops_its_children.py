"""SIGTERM or Ctrl-C to `scaling run --local` stops its training children
(checkpointed, `cancelled`, resumable) instead of orphaning them, with one error line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli_checks import (
    BASE,
    clean_env,
    error_line,
    set_dotted,
    state,
)
from tests.helpers.slurm_runs import scaling, write_sweep_file


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_stopping_the_executor_stops_its_training_child(tmp_path, how):
    base = json.loads(json.dumps(BASE))
    set_dotted(base, "optim.images_seen", 16 * 5000)  # long enough to be signalled mid-run
    set_dotted(base, "checkpoint.every_steps", 1000)
    sweep_file = write_sweep_file(tmp_path, base=base, axes={"seed": [0]})
    scaling("sweep", sweep_file, "--root", tmp_path / "sweeps")
    sweep = tmp_path / "sweeps" / "tiny"
    run = sweep / "runs" / "s0"
    executor = subprocess.Popen(
        [sys.executable, "-m", "scaling.cli", "run", str(sweep), "--local", "--progress",
         "false"], env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,  # its own group: a terminal's foreground group
        # as in a terminal, SIGINT starts at its default: a suite launched in the background
        # of a non-interactive shell inherits it ignored, and Python then keeps ignoring it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while not (run / "metrics.jsonl").is_file():  # the child is in its training loop
            assert executor.poll() is None and time.monotonic() < deadline, executor.stderr.read()
            time.sleep(0.5)
        assert _processes_mentioning(str(run / "config.yaml")), "no training child found"
        if how == "SIGTERM":
            executor.send_signal(signal.SIGTERM)
        else:
            os.killpg(executor.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
        out, err = executor.communicate(timeout=120)
    finally:
        if executor.poll() is None:
            os.killpg(executor.pid, signal.SIGKILL)
    proc = subprocess.CompletedProcess(executor.args, executor.returncode, out, err)
    assert proc.returncode == 1, err
    assert f"stopped by {how}" in error_line(proc) and "rerun `scaling run --local`" in err
    assert _processes_mentioning(str(run / "config.yaml")) == []  # no orphan left behind
    st = state(run)
    assert st["train"] == "cancelled" and st["error"] == "cancelled by SIGTERM"
    from scaling.checkpoint import latest_complete

    assert latest_complete(run / "checkpoints") is not None, "the stopped run was not checkpointed"
