"""`scaling train/transfer --config RUN/config.yaml --field value` (the README's usage):
the run's config.yaml records what ran, so `scaling collect` reports it; a change that a
checkpoint, the trunk or written results depend on is refused in one line whose fixes
work (scaling/runconfig.py)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from contract.config import config_hash, load_run_config
from contract.runfolder import read_manifest
from tests.helpers.engine import TINY, StopAfter, losses, state


def _scaling(capsys, *args):
    """`scaling ARGS` in this process: (exit code, stdout, stderr)."""
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


def _recorded(run, dotted: str):
    node = yaml.safe_load((run / "config.yaml").read_text())
    for key in dotted.split("."):
        node = node[key]
    return node


@pytest.fixture
def sweep(tmp_path):
    """A one-run sweep expanded by `scaling sweep` (manifest with FLOPs and estimates)."""
    from scaling.sweep import expand_sweep

    base = json.loads(json.dumps(TINY))
    base["resources"]["mem_gb"] = 1
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "s", "base": base,
                                                     "seeds": [0]}))
    return expand_sweep(tmp_path / "s.yaml", tmp_path / "sweeps")


@pytest.mark.slow
def test_a_train_override_is_recorded_and_collect_reports_what_ran(sweep, capsys):
    from analysis import collect

    run = sweep / "runs" / "s0"
    assert _recorded(run, "optim.images_seen") == 320
    rc, out, _ = _scaling(capsys, "train", "--config", run / "config.yaml",
                          "--optim.images_seen", "640", "--optim.lr_per_256", "0.2")
    assert rc == 0
    assert "s0: config.yaml now records the train command line (optim.images_seen: 320 " \
           "-> 640)" in out
    assert _recorded(run, "optim.images_seen") == 640
    assert _recorded(run, "optim.lr_per_256") == 0.2
    assert state(run)["images_seen"] == 640 and len(losses(run)) == 640 // 16
    row = read_manifest(sweep / "manifest.csv")[0]
    config = load_run_config(run / "config.yaml")
    assert row["config_hash"] == config_hash(config)
    assert int(float(row["pretrain_flops"])) == 3 * int(row["flops_per_image"]) * 640
    df = collect(sweep, write=False)
    assert df["images_seen"].tolist() == [640]
    assert df["pretrain_flops"].tolist() == [3 * int(row["flops_per_image"]) * 640]
    # the same command again: nothing changes, nothing to do
    rc, out, _ = _scaling(capsys, "train", "--config", run / "config.yaml",
                          "--optim.images_seen", "640", "--optim.lr_per_256", "0.2")
    assert rc == 0 and "nothing to do" in out


@pytest.mark.slow
def test_a_train_override_of_a_checkpointed_run_is_refused_and_both_fixes_work(
        sweep, tmp_path, capsys, monkeypatch):
    import scaling.engine as E

    run = sweep / "runs" / "s0"
    monkeypatch.setattr(E, "SignalFlags", lambda: StopAfter(7))
    rc, _, _ = _scaling(capsys, "train", "--config", run / "config.yaml")
    assert rc == 3 and state(run)["train"] == "cancelled"
    monkeypatch.setattr(E, "SignalFlags", lambda: StopAfter(10**9))
    before = (run / "config.yaml").read_text()
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)

    change = ("--optim.lr_per_256", "0.05")
    rc, _, err = _scaling(capsys, "train", "--config", run / "config.yaml", *change)
    line = _error(err)
    assert rc == 2 and (run / "config.yaml").read_text() == before
    assert line == (f"error: run s0 has checkpoints and its config would change "
                    f"(optim.lr_per_256: 0.4 -> 0.05): train the change as a new run: add "
                    f"--run_dir NEW_FOLDER, or remove {run / 'checkpoints'} to train this "
                    "run again from step 0")
    assert state(run)["train"] == "cancelled"  # the refusal touched nothing

    # a value outside the config hash is no change to the results: the run resumes
    rc, out, _ = _scaling(capsys, "train", "--config", run / "config.yaml",
                          "--logging.every_steps", "2")
    assert rc == 0 and "resumed from checkpoint" in out
    assert (run / "config.yaml").read_text() == before

    # fix 1: a new run folder trains the change; the old run keeps its record
    new = tmp_path / "new"
    rc, _, _ = _scaling(capsys, "train", "--config", copy / "config.yaml", *change,
                        "--run_dir", new)
    assert rc == 0 and _recorded(new, "optim.lr_per_256") == 0.05
    assert state(new)["train"] == "done" and _recorded(copy, "optim.lr_per_256") == 0.4

    # fix 2: without its checkpoints the run trains again from step 0, recording the change
    shutil.rmtree(copy / "checkpoints")
    rc, out, _ = _scaling(capsys, "train", "--config", copy / "config.yaml", *change)
    assert rc == 0 and "starting at step 0" in out
    assert _recorded(copy, "optim.lr_per_256") == 0.05 and state(copy)["train"] == "done"
    assert losses(copy) == losses(new)  # what it recorded is what ran

    # a done run: the message names only the fix that works for it
    rc, _, err = _scaling(capsys, "train", "--config", run / "config.yaml", *change)
    assert rc == 2 and "run s0 is done and its config would change" in _error(err)
    assert "remove" not in _error(err)


@pytest.mark.slow
def test_a_transfer_override_is_recorded_or_refused_with_fixes_that_work(sweep, capsys):
    run = sweep / "runs" / "s0"
    assert _scaling(capsys, "train", "--config", run / "config.yaml")[0] == 0
    rc, out, _ = _scaling(capsys, "transfer", "--config", run / "config.yaml",
                          "--transfer.train_images", "100")
    assert rc == 0 and _recorded(run, "transfer.train_images") == 100
    assert "config.yaml now records the transfer command line" in out
    result = json.loads((run / "transfer" / "fine__linear.json").read_text())
    assert result["n_train"] == 100

    rc, _, err = _scaling(capsys, "transfer", "--config", run / "config.yaml",
                          "--transfer.train_images", "150")
    line = _error(err)
    assert rc == 2 and "has transfer results (fine__linear.json) made with its config.yaml" \
        in line and "(transfer.train_images: 100 -> 150)" in line
    assert f"remove {run / 'transfer'} to evaluate the run again" in line
    shutil.rmtree(run / "transfer")  # the fix
    rc, _, _ = _scaling(capsys, "transfer", "--config", run / "config.yaml",
                        "--transfer.train_images", "150")
    assert rc == 0 and state(run)["transfer"] == "done"
    assert _recorded(run, "transfer.train_images") == 150
    assert json.loads((run / "transfer" / "fine__linear.json").read_text())["n_train"] == 150

    # the trunk was trained with everything else: transfer refuses to pretend otherwise
    rc, _, err = _scaling(capsys, "transfer", "--config", run / "config.yaml",
                          "--optim.lr_per_256", "0.05")
    assert rc == 2 and "only transfer.* may change for transfer (optim.lr_per_256: 0.4 " \
        "-> 0.05): drop that value" in _error(err)
