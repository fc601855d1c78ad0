"""`scaling status` and the finish job read jobs.json as `scaling submit` leaves it, a
submission that stopped half-way included (arrays and the finish job with `job: null`,
the README's recovery case): they show what is not submitted and go on, never crash."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.slurm_runs import write_sweep


def _half_done(sweep) -> None:
    """What `submit` records when the controller went away after the train array."""
    record = {"time": "2026-01-01T00:00:00+00:00", "folder": "slurm/submit-001",
              "profile": "default", "dry_run": False, "complete": False,
              "arrays": [{"phase": "train", "shape": "1n1cpu-c1-m1g-t10", "name": "half-00",
                          "job": "1001", "dependency": None, "after": None,
                          "run_ids": ["a", "b"], "script": "x.sbatch", "tasks": "x.txt"},
                         {"phase": "transfer", "shape": "1n1cpu-c1-m1g-t10",
                          "name": "half-01", "job": None, "dependency": None, "after": 0,
                          "run_ids": ["a", "b"], "script": "y.sbatch", "tasks": "y.txt"}],
              "finish": {"job": None, "dependency": None, "script": "finish.sbatch"},
              "skipped": {}}
    (sweep / "slurm").mkdir(parents=True, exist_ok=True)
    (sweep / "slurm" / "jobs.json").write_text(json.dumps({"submissions": [record]}))


@pytest.fixture
def squeue(tmp_path, monkeypatch):
    """A squeue that says the train array's tasks are running."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/usr/bin/env bash\n"
                                    "printf '1001_0|RUNNING|None\\n1001_1|RUNNING|None\\n'\n")
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_status_of_a_half_done_submission_says_what_is_not_submitted(tmp_path, capsys,
                                                                     squeue):
    from scaling.cli import main

    sweep = write_sweep(tmp_path, "half", {"a": {}, "b": {}})
    _half_done(sweep)
    assert main(["status", str(sweep)]) == 0
    out = capsys.readouterr().out
    jobs = [ln.split() for ln in out.splitlines()[out.splitlines().index("jobs:") + 1:]]
    assert jobs[0][:2] == ["train", "1001"] and "2 RUNNING" in " ".join(jobs[0])
    assert jobs[1][:2] == ["transfer", "-"] and "not submitted" in " ".join(jobs[1])
    assert jobs[2][:2] == ["finish", "-"] and "scaling submit" in " ".join(jobs[2])
    assert "1001_1" in out  # the runs still show their train task


@pytest.mark.integration
def test_the_finish_job_survives_a_half_done_submission(tmp_path, capsys, squeue):
    from slurm import finish

    sweep = write_sweep(tmp_path, "half", {"a": {}, "b": {}})
    _half_done(sweep)
    rc = finish.main([str(sweep), "--no_report"])
    out = capsys.readouterr().out
    assert "TypeError" not in out and "not submitted" in out, out
    assert "NOT DONE a: train=pending" in out
    assert "finish end rc=1" in out and rc == 1  # the runs are not done: a look is needed
    assert (sweep / "results.parquet").is_file(), out  # collect still ran
