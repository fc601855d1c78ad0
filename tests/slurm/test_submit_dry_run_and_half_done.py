"""Submission against a scripted `sbatch`/`squeue` (a controller that fails on
cue, which a live cluster cannot do between two sbatch calls of one submission): a dry run
writes nothing queued jobs read, and a half-done submission is completed, not forgotten."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.console import main, one_error_line, snapshot
from tests.helpers.slurm_runs import write_profile, write_sweep

SBATCH = r"""#!/usr/bin/env bash
n=$(( $(cat "$FAKE_SLURM/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$FAKE_SLURM/count"
if [ -f "$FAKE_SLURM/fail_at" ] && [ "$n" -ge "$(cat "$FAKE_SLURM/fail_at")" ]; then
  echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller" >&2
  exit 1
fi
echo "$((1000 + n)) $*" >> "$FAKE_SLURM/calls"
echo "$((1000 + n))"
"""
SQUEUE = r"""#!/usr/bin/env bash
cat "$FAKE_SLURM/queue" 2>/dev/null || true
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    state = tmp_path / "fake-slurm"
    (state / "bin").mkdir(parents=True)
    for name, text in (("sbatch", SBATCH), ("squeue", SQUEUE)):
        (state / "bin" / name).write_text(text)
        (state / "bin" / name).chmod(0o755)
    monkeypatch.setenv("FAKE_SLURM", str(state))
    monkeypatch.setenv("PATH", f"{state / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return state


def _calls(fake) -> list[str]:
    path = fake / "calls"
    return path.read_text().splitlines() if path.exists() else []


def _queue(fake, *keys, state="RUNNING"):
    (fake / "queue").write_text("".join(f"{k}|{state}|None\n" for k in keys))


def _jobs(sweep: Path) -> dict:
    return json.loads((sweep / "slurm" / "jobs.json").read_text())


def test_a_dry_run_writes_nothing_that_queued_jobs_read(tmp_path, capsys, fake_slurm):
    sweep = write_sweep(tmp_path, "live", {"a": {}, "b": {}})
    profile = write_profile(tmp_path / "p.yaml")
    assert main(capsys, "submit", sweep, "--profile", profile).returncode == 0
    _queue(fake_slurm, "1001_0", "1001_1", state="PENDING")
    live = _jobs(sweep)["submissions"][0]
    train_sbatch = (sweep / live["arrays"][0]["script"]).read_text()
    own = sweep / live["folder"] / "train_task.sh"
    assert f"exec bash {own} slurm" in train_sbatch  # queued tasks read their own copy
    # a new run appears; a dry run with another profile (another interpreter) renders it
    write_sweep(tmp_path / "more", "live", {"c": {}})
    (sweep / "runs" / "c").mkdir()
    (sweep / "runs" / "c" / "config.yaml").write_text(
        (tmp_path / "more" / "live" / "runs" / "c" / "config.yaml").read_text())
    (sweep / "manifest.csv").write_text("run_id\na\nb\nc\n")
    before = snapshot(sweep, skip=[os.path.join("slurm", "dry-run")])
    other = write_profile(tmp_path / "other.yaml", python="/opt/other/bin/python")
    proc = main(capsys, "submit", sweep, "--profile", other, "--dry_run")
    assert proc.returncode == 0 and "would submit 1 runs" in proc.stdout, proc.stdout
    assert snapshot(sweep, skip=[os.path.join("slurm", "dry-run")]) == before
    assert "PYTHON=/opt/other/bin/python" in \
        (sweep / "slurm" / "dry-run" / "train_task.sh").read_text()
    assert "/opt/other" not in own.read_text()  # the queued tasks still run what they had
    assert len(_calls(fake_slurm)) == 3  # the dry run called no sbatch


def test_a_half_done_submission_is_completed_on_resubmit(tmp_path, capsys, fake_slurm):
    sweep = write_sweep(tmp_path, "half", {"a": {}, "b": {}})
    profile = write_profile(tmp_path / "p.yaml")
    (fake_slurm / "fail_at").write_text("2")  # the controller goes after the train array
    proc = main(capsys, "submit", sweep, "--profile", profile)
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "Unable to contact slurm controller" in line and "run `scaling submit` again" in line
    record = _jobs(sweep)["submissions"][0]
    assert record["complete"] is False and record["arrays"][0]["job"] == "1001"
    assert record["arrays"][1]["job"] is None and record["finish"]["job"] is None

    (fake_slurm / "fail_at").unlink()  # the controller is back; the train tasks run
    (fake_slurm / "count").write_text("2")
    _queue(fake_slurm, "1001_0", "1001_1")
    proc = main(capsys, "submit", sweep, "--profile", profile)
    assert proc.returncode == 0, proc.stderr
    assert "completed the half-done submission slurm/submit-001" in proc.stdout
    calls = _calls(fake_slurm)
    assert calls[1].startswith("1003 --parsable --dependency=aftercorr:1001 ")
    assert "01-transfer-" in calls[1]
    assert calls[2].startswith("1004 --parsable --dependency=afterany:1001:1003 ")
    assert calls[2].endswith("finish.sbatch")
    record = _jobs(sweep)["submissions"]
    assert len(record) == 1 and record[0]["complete"] is True
    assert [a["job"] for a in record[0]["arrays"]] == ["1001", "1003"]
    assert record[0]["finish"]["job"] == "1004"
    # nothing else to do: the runs are queued, so no duplicate submission
    assert sorted(p.name for p in (sweep / "slurm").glob("submit-*")) == ["submit-001"]


def test_a_submission_that_queued_nothing_leaves_no_folder(tmp_path, capsys, fake_slurm):
    sweep = write_sweep(tmp_path, "none", {"a": {}})
    profile = write_profile(tmp_path / "p.yaml")
    (fake_slurm / "fail_at").write_text("1")
    proc = main(capsys, "submit", sweep, "--profile", profile)
    assert proc.returncode == 1 and "Unable to contact" in one_error_line(proc)
    assert not list((sweep / "slurm").glob("submit-*"))
    assert _jobs(sweep)["submissions"] == []
    # an orphan from an attempt that crashed outright is removed by the next submit
    (sweep / "slurm" / "submit-007").mkdir()
    (sweep / "slurm" / "submit-007" / "00-train-x.sbatch").write_text("#!/bin/bash\n")
    (fake_slurm / "fail_at").unlink()
    proc = main(capsys, "submit", sweep, "--profile", profile)
    assert proc.returncode == 0, proc.stderr
    assert "removed slurm/submit-007" in proc.stdout
    assert sorted(p.name for p in (sweep / "slurm").glob("submit-*")) == ["submit-001"]
    assert _jobs(sweep)["submissions"][0]["complete"] is True
