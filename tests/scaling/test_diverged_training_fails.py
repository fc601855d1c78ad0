"""fp32 training that diverges fails the run with the step named; it never ends
`done`, never writes a trunk, and transfer never publishes a number from a NaN trunk."""

from __future__ import annotations

import json

import pytest
import torch

from contract.config import load_run_config
from contract.errors import RunError
from tests.helpers.cli_checks import make_run, state


def _train(run_dir):
    from scaling.engine import train

    return train(load_run_config(run_dir / "config.yaml"), run_dir)


def test_diverging_fp32_run_fails_naming_the_step_and_writes_no_trunk(tmp_path):
    run = make_run(tmp_path, optim__lr_per_256=1e30, optim__warmup_frac=0.0)
    with pytest.raises(RunError, match=r"loss is not finite at step \d+ of 20"):
        _train(run)
    st = state(run)
    assert st["train"] == "failed" and "not finite at step" in st["error"]
    assert not (run / "final").exists()
    assert not (run / "checkpoints").exists()  # nothing saved from a diverged model
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert not all(map(lambda v: v == v and abs(v) < float("inf"), losses))


def test_transfer_refuses_a_trunk_with_nan_weights(tmp_path):
    from scaling.transfer import transfer

    run = make_run(tmp_path, optim__images_seen=32, checkpoint__every_steps=100)
    assert _train(run) == "done"
    trunk = torch.load(run / "final" / "trunk.pt", weights_only=True)
    name = next(k for k, v in trunk.items() if v.is_floating_point())
    trunk[name] = torch.full_like(trunk[name], float("nan"))
    torch.save(trunk, run / "final" / "trunk.pt")
    with pytest.raises(RunError, match="non-finite weights"):
        transfer(load_run_config(run / "config.yaml"), run)
    assert not list(run.glob("transfer/*.json"))
    assert state(run)["transfer"] != "done"
