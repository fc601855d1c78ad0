"""Checkpoints are verified (SHA-256 in the
COMPLETE marker) before anything is deserialised; a corrupt or tampered newest checkpoint
is skipped with a message naming it and why, and the previous one is resumed from - which
state.json (`resumed_from`) and the log say, so a resume is told from a restart."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import time

import pytest

from tests.helpers.engine import env, losses, make_run, state, train, train_cmd

pytestmark = pytest.mark.integration  # every test here starts a scaling process


class _Exploit:
    """A pickle that runs a shell command when loaded (what a crafted file would hold)."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def _stop_with_sigterm(run, min_lines: int = 8):
    """Train `run` and SIGTERM it mid-way: it checkpoints the step it is at and exits."""
    proc = subprocess.Popen(train_cmd(run), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= min_lines:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) != 0
    assert state(run)["train"] == "cancelled"


def _complete(run):
    return sorted(p for p in (run / "checkpoints").iterdir() if (p / "COMPLETE").is_file())


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """(reference run, a run cancelled at step s with complete checkpoints at 5 (or 10) and s)."""
    root = tmp_path_factory.mktemp("ckpt")
    ref = make_run(root, "ref")
    train(ref)
    run = make_run(root, "stopped")
    _stop_with_sigterm(run)
    ckpts = _complete(run)
    assert len(ckpts) == 2 and int(ckpts[-1].name) < 20, [c.name for c in ckpts]
    return ref, run


def _copy(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _resume_expecting_fallback(run, ref, reason: str):
    older, newest = _complete(run)
    proc = train(run)
    line = f"warning: checkpoint {newest} skipped: {reason}"
    assert line in proc.stderr, proc.stderr
    assert f"resumed from checkpoint {older.name} at step {int(older.name)}" in proc.stdout
    st = state(run)
    assert (st["train"], st["attempts"], st["resumed_from"]) == ("done", 2, int(older.name))
    assert losses(run) == losses(ref)  # bit for bit: nothing lost by falling back


def test_a_truncated_newest_checkpoint_is_skipped_and_the_previous_one_resumed(stopped,
                                                                             tmp_path):
    ref, run = stopped
    run = _copy(run, tmp_path)
    state_pt = _complete(run)[-1] / "state.pt"
    state_pt.write_bytes(state_pt.read_bytes()[:1000])
    _resume_expecting_fallback(run, ref, "state.pt does not match its recorded SHA-256 "
                                         "(truncated or modified)")


def test_a_newest_checkpoint_missing_meta_json_is_skipped(stopped, tmp_path):
    ref, run = stopped
    run = _copy(run, tmp_path)
    (_complete(run)[-1] / "meta.json").unlink()
    _resume_expecting_fallback(run, ref, "meta.json is missing")


def test_a_tampered_checkpoint_file_is_never_unpickled(stopped, tmp_path):
    ref, run = stopped
    run = _copy(run, tmp_path)
    sentinel = tmp_path / "PWNED"
    extra = _complete(run)[-1] / "extra.pt"
    extra.write_bytes(pickle.dumps(_Exploit(sentinel)))
    _resume_expecting_fallback(run, ref, "extra.pt does not match its recorded SHA-256 "
                               "(truncated or modified)")
    assert not sentinel.exists()


def test_a_pickle_with_a_forged_checksum_is_refused_without_suggesting_weights_only_false(
        stopped, tmp_path):
    _, run = stopped
    run = _copy(run, tmp_path)
    sentinel = tmp_path / "PWNED"
    newest = _complete(run)[-1]
    payload = pickle.dumps(_Exploit(sentinel))
    (newest / "extra.pt").write_bytes(payload)
    marker = json.loads((newest / "COMPLETE").read_text())  # the attacker rewrites it too
    marker["files"]["extra.pt"] = hashlib.sha256(payload).hexdigest()
    (newest / "COMPLETE").write_text(json.dumps(marker))
    proc = train(run, check=False)
    assert proc.returncode == 1
    assert not sentinel.exists()
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{newest / 'extra.pt'}: refused to load" in errors[0]
    assert "weights_only=False" not in proc.stderr + proc.stdout
    st = state(run)
    assert st["train"] == "failed" and "refused to load" in st["error"]
    assert "weights_only=False" not in st["error"]


@pytest.mark.slow  # two 2-rank launches: ~12 s
def test_a_crafted_dcp_metadata_never_runs(tmp_path):
    # FSDP2 on one rank: DCP writes a pickled `.metadata` that dcp.load unpickles
    run = make_run(tmp_path, "fsdp", shard={"strategy": "fsdp2"})
    _stop_with_sigterm(run)
    newest = _complete(run)[-1]
    sentinel = tmp_path / "PWNED"
    (newest / "dcp" / ".metadata").write_bytes(pickle.dumps(_Exploit(sentinel)))
    proc = train(run)
    assert not sentinel.exists()
    assert (f"warning: checkpoint {newest} skipped: dcp/.metadata does not match its "
            "recorded SHA-256") in proc.stderr
    assert state(run)["train"] == "done" and state(run)["resumed_from"] < int(newest.name)


def test_an_old_marker_without_checksums_is_not_trusted(stopped, tmp_path):
    ref, run = stopped
    run = _copy(run, tmp_path)
    (_complete(run)[-1] / "COMPLETE").write_text("2026-01-01T00:00:00+00:00\n")
    _resume_expecting_fallback(run, ref, "its COMPLETE marker records no checksums")


def test_a_restart_is_told_from_a_resume(stopped, tmp_path):
    """Deleting checkpoints/ after the stop gives the same curve (the run is deterministic)
    but `resumed_from` says it started over: what the resume tests assert."""
    ref, run = stopped
    run = _copy(run, tmp_path)
    shutil.rmtree(run / "checkpoints")
    proc = train(run)
    assert "starting at step 0" in proc.stdout
    assert state(run)["resumed_from"] is None and state(run)["attempts"] == 2
    assert losses(run) == losses(ref)
