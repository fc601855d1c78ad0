"""What `scaling train` does before its first step is done once, or deferred."""

from __future__ import annotations

import json

import pytest

from contract.config import RunConfig, from_dict
from scaling import cli, memory
from scaling.telemetry import MetricsLogger
from tests.helpers.engine import TINY, make_run


def test_scaling_train_builds_one_run_config_parser(tmp_path, monkeypatch):
    """The run-config parser is the costly one (a few tenths of a second each): train
    builds it once, not once per subcommand that uses it plus once for its flags."""
    built = []
    make = cli._run_config_parser

    def counting(help_text, **kwargs):
        built.append(help_text)
        return make(help_text, **kwargs)

    monkeypatch.setattr(cli, "_run_config_parser", counting)
    monkeypatch.setattr(cli, "_execute", lambda command, cfg: 0)  # parse only, no training
    run = make_run(tmp_path)
    assert cli.main(["train", "--config", str(run / "config.yaml"), "--seed", "3"]) == 0
    assert len(built) == 1


def test_unknown_option_of_train_still_names_the_closest(tmp_path, capsys):
    run = make_run(tmp_path)
    assert cli.main(["train", "--config", str(run / "config.yaml"), "--sed", "3"]) == 2
    assert "did you mean '--seed'" in capsys.readouterr().err


def test_tensorboard_writer_is_made_at_the_first_logged_step(tmp_path):
    pytest.importorskip("tensorboard")
    logger = MetricsLogger(tmp_path, tensorboard=True)
    assert logger.tb is None and not (tmp_path / "tb").exists()  # nothing before step 1
    logger.log({"step": 1, "loss": 2.5})
    assert any((tmp_path / "tb").glob("events.out.tfevents.*"))
    logger.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["loss"] == 2.5


def test_memory_report_profile_reuses_the_trainers_flop_count(monkeypatch):
    """The estimate in memory.json takes the FLOPs the trainer counted at start-up."""
    import models

    def counted(*args, **kwargs):
        raise AssertionError("FLOPs counted twice")

    monkeypatch.setattr(models, "forward_flops", counted)
    config = from_dict(RunConfig, json.loads(json.dumps(TINY)))
    profile = memory.profile_config(config, 40, flops_per_image=12345)
    assert profile.flops_per_image == 12345 and profile.params > 0
