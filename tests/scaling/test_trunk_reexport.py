"""A refused or missing `final/` trunk: every message's advice leads to a working transfer.
`scaling train` on a done run whose final/ is gone exports it again from the final
checkpoint (no retraining), and transfer then runs."""

from __future__ import annotations

import datetime
import shutil

import pytest
import torch

from tests.helpers.engine import make_run, state


def _scaling(capsys, *args):
    from scaling.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _error(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.slow  # trains a tiny run and probes it twice, in-process
def test_a_refused_trunks_advice_leads_to_a_working_transfer(tmp_path, capsys):
    run = make_run(tmp_path)
    config = run / "config.yaml"
    assert _scaling(capsys, "train", "--config", config)[0] == 0
    trunk = torch.load(run / "final" / "trunk.pt", weights_only=True)
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    torch.save({"when": datetime.date(2026, 1, 1)}, run / "final" / "trunk.pt")  # foreign

    rc, _, err = _scaling(capsys, "transfer", "--config", config)
    line = _error(err)
    assert rc == 1 and f"{run / 'final' / 'trunk.pt'}: refused to load" in line
    assert line.endswith(f"remove {run / 'final'}, then run `scaling train --config "
                         f"{config}` to export the trunk (from the final checkpoint when "
                         "training is done)")

    shutil.rmtree(run / "final")  # the advice, step 1
    rc, _, err = _scaling(capsys, "transfer", "--config", config)  # before step 2
    assert rc == 1 and _error(err).endswith(
        f"train is done but {run / 'final'} is missing or incomplete: run `scaling train "
        f"--config {config}` to export the trunk (from the final checkpoint when training "
        "is done)")

    rc, out, _ = _scaling(capsys, "train", "--config", config)  # the advice, step 2
    assert rc == 0 and "nothing to do" not in out
    assert "exporting it again from the newest checkpoint" in out
    assert f"resumed from checkpoint {checkpoints[-1]}" in out  # no step trained again
    again = torch.load(run / "final" / "trunk.pt", weights_only=True)
    assert again.keys() == trunk.keys()
    assert all(torch.equal(again[k], trunk[k]) for k in trunk)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == checkpoints
    assert state(run)["train"] == "done"

    rc, _, _ = _scaling(capsys, "transfer", "--config", config)
    assert rc == 0 and state(run)["transfer"] == "done"
    assert (run / "transfer" / "fine__linear.json").is_file()
