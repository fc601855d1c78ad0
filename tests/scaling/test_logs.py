"""Issue 10 item 6: the `scaling` logger. Rank 0 speaks unless a record is marked
ALL_RANKS; info on stdout, warnings on stderr as `warning: ...`; `[rank R]` with several
ranks; SCALING_LOG_LEVEL sets the level."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from contract.runfolder import update_state
from scaling import logs
from tests.helpers.engine import env, make_run


@pytest.fixture
def log(monkeypatch):
    monkeypatch.delenv("SCALING_LOG_LEVEL", raising=False)
    monkeypatch.setattr(logs, "_rank", None)
    monkeypatch.setattr(logs, "_world", None)
    for var in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    logs.setup()
    return logging.getLogger("scaling.engine")


def test_one_rank_prints_info_on_stdout_and_warnings_on_stderr(log, capsys):
    log.info("r0: starting at step 0")
    log.warning("checkpoint x skipped: truncated")
    out, err = capsys.readouterr()
    assert out == "r0: starting at step 0\n"
    assert err == "warning: checkpoint x skipped: truncated\n"


def test_rank_one_says_only_what_every_rank_must_say(log, capsys):
    logs.set_rank(1, 2)
    log.info("r0: starting at step 0")
    log.warning("checkpoint x skipped: truncated")
    log.info("wsl-scaling: rank 1 on h: resumed from x (step 5)", extra=logs.ALL_RANKS)
    out, err = capsys.readouterr()
    assert out == "[rank 1] wsl-scaling: rank 1 on h: resumed from x (step 5)\n"
    assert err == ""
    logs.set_rank(0, 2)
    log.info("r0: starting at step 0")
    assert capsys.readouterr().out == "[rank 0] r0: starting at step 0\n"


def test_the_rank_comes_from_the_launcher_before_dist_setup(log, capsys, monkeypatch):
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert logs.rank_and_world() == (3, 4)
    log.info("dropped")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")  # torchrun's variables win over srun's
    log.info("kept")
    assert capsys.readouterr().out == "[rank 0] kept\n"


def test_setup_twice_adds_one_handler_and_the_level_comes_from_the_env(log, capsys,
                                                                       monkeypatch):
    monkeypatch.setenv("SCALING_LOG_LEVEL", "warning")
    logs.setup()
    log.info("hidden")
    log.warning("shown")
    out, err = capsys.readouterr()
    assert out == "" and err == "warning: shown\n"
    monkeypatch.setenv("SCALING_LOG_LEVEL", "INFO")
    logs.setup()


def test_a_bad_log_level_is_one_line_naming_it(capsys, monkeypatch):
    from scaling.cli import main

    monkeypatch.setenv("SCALING_LOG_LEVEL", "loud")
    assert main(["status", "nowhere"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: SCALING_LOG_LEVEL='LOUD' is invalid: use one of DEBUG, INFO, WARNING, ERROR")
    monkeypatch.delenv("SCALING_LOG_LEVEL")
    logs.setup()


@pytest.mark.integration
def test_only_rank_zero_of_a_real_launch_says_train_is_done(tmp_path):
    """Each rank of a launch runs `scaling train` on a finished run: one line, not two."""
    run = make_run(tmp_path)
    update_state(run, train="done")
    (run / "final").mkdir()  # a done run has its exported trunk (else train exports it)
    for name in ("model.json", "trunk.pt"):
        (run / "final" / name).write_text("{}")
    procs = [subprocess.Popen([sys.executable, "-m", "scaling.cli", "train", "--config",
                               str(run / "config.yaml")],
                              env={**env(), "RANK": str(r), "WORLD_SIZE": "2"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]  # torch imports on a busy machine
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == f"[rank 0] {run.name}: train already done, nothing to do\n"
    assert outs[1][0] == ""
