"""The one phase runner (scaling/phase.py): train and transfer set up the same way (the
collective timeout included, which transfer once left at the 1,800 s default), and a
body's failure, stop or interrupt ends the phase the same way."""

from __future__ import annotations

import json

import pytest

from contract.config import load_run_config
from contract.errors import RunError
from contract.runfolder import read_state
from scaling import phase
from tests.helpers.engine import make_run


class Reached(Exception):
    """Raised by the stand-in dist.setup: how far the phase got, and with what."""


@pytest.fixture
def setup_calls(monkeypatch):
    calls = []

    def setup(device, timeout_s=None):
        calls.append((device, timeout_s))
        raise Reached()

    monkeypatch.setattr(phase.dist, "setup", setup)
    return calls


def test_train_and_transfer_set_up_with_the_collective_timeout(tmp_path, setup_calls):
    from scaling.engine import train
    from scaling.transfer import transfer

    run = make_run(tmp_path, resources__collective_timeout_s=77)
    with pytest.raises(Reached):
        train(load_run_config(run / "config.yaml"), run)
    (run / "state.json").write_text(json.dumps({"train": "done"}))
    (run / "final").mkdir()
    for name in ("model.json", "trunk.pt"):
        (run / "final" / name).write_text("{}")
    with pytest.raises(Reached):
        transfer(load_run_config(run / "config.yaml"), run)
    assert setup_calls == [("cpu", 77), ("cpu", 77)]


def _run(tmp_path, body, finished=lambda: False):
    run = make_run(tmp_path)
    config = load_run_config(run / "config.yaml")
    return run, phase.run_phase(run, "transfer", config, body, finished=finished,
                                nothing="nothing")


def test_a_failing_body_is_recorded_in_one_line(tmp_path):
    def body(env):
        raise RunError("the target is gone:\n  look elsewhere")

    with pytest.raises(RunError):
        _run(tmp_path, body)
    state = read_state(tmp_path / "run")
    assert state["transfer"] == "failed"
    assert state["error"] == "RunError: the target is gone: look elsewhere"
    assert not (tmp_path / "run" / "run.lock").exists()  # released


def test_ctrl_c_and_a_recorded_stop_are_not_failures(tmp_path):
    def interrupted(env):
        raise KeyboardInterrupt()

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "a", interrupted)
    assert read_state(tmp_path / "a" / "run")["transfer"] == "pending"

    def stopped(env):
        raise phase.PhaseStopped()

    _, result = _run(tmp_path / "b", stopped)
    assert result == "nothing" and read_state(tmp_path / "b" / "run")["transfer"] == "pending"


def test_a_finished_phase_is_not_started(tmp_path, setup_calls):
    _, result = _run(tmp_path, lambda env: "ran", finished=lambda: True)
    assert result == "nothing" and setup_calls == []
