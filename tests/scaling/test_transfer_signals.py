"""A transfer stopped by SIGTERM (scancel, the local executor stopping) or Ctrl-C ends
`cancelled`, as training does, never left `running`; rerunning it finishes the run."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.helpers.engine import REPO, env, make_run, state, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    # many few-shot draws: the probes run long enough to be signalled mid-way
    run = make_run(tmp_path_factory.mktemp("signals"), "run",
                   transfer__protocols=["linear", "fewshot"], transfer__fewshot_draws=400)
    train(run)
    return run


def _argv(run) -> list[str]:
    return [sys.executable, "-m", "scaling.cli", "transfer", "--config",
            str(run / "config.yaml")]


def _transfer(run) -> subprocess.Popen:
    return subprocess.Popen(
        _argv(run), env=env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as in a terminal, SIGINT starts at its default (a suite started in the background
        # inherits it ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _stop_while_running(run, sig) -> subprocess.CompletedProcess:
    proc = _transfer(run)
    deadline = time.monotonic() + 120
    while state(run)["transfer"] != "running" or not (run / "transfer" / "features").is_dir():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    time.sleep(1.0)  # in the probes
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, how", [(signal.SIGTERM, 3, "SIGTERM"),
                                            (signal.SIGINT, 130, "Ctrl-C (SIGINT)")])
def test_a_signalled_transfer_ends_cancelled_and_a_rerun_finishes_it(trained, tmp_path, sig,
                                                                      code, how):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    proc = _stop_while_running(run, sig)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    st = state(run)
    assert (st["train"], st["transfer"], st["error"]) == ("done", "cancelled",
                                                          f"cancelled by {how}")
    assert not (run / "run.lock").exists()
    # the advice: rerun `scaling transfer` (here with fewer draws, to finish quickly)
    assert "rerun `scaling transfer`" in proc.stdout + proc.stderr
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["transfer"]["fewshot_draws"] = 2
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    rerun = subprocess.run(_argv(run), env=env(), cwd=REPO, capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert state(run)["transfer"] == "done" and state(run)["error"] is None
    assert (run / "transfer" / "fine__fewshot.json").is_file()
