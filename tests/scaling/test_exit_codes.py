"""Exit codes say what happened. `run --local` with failed runs, `status` without
a reachable controller, `collect`/`fit` on a folder that is not a sweep exit non-zero with
one line (and write nothing there); `report` on an all-failed sweep shows the run table."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.helpers.cli_checks import (
    BASE,
    error_line,
    fake_sweep,
    report_env,
    set_dotted,
    state,
    tree,
)
from tests.helpers.slurm_runs import scaling, write_sweep_file

pytestmark = pytest.mark.integration  # every test here starts a scaling process


@pytest.mark.slow
def test_run_local_exits_nonzero_and_names_the_failed_run(tmp_path):
    """End to end: the diverged run is `failed`, never `done`, and neither a
    trunk nor a transfer number is written."""
    base = set_dotted(json.loads(json.dumps(BASE)), "optim.lr_per_256", 1e30)  # diverges
    sweep_file = write_sweep_file(tmp_path, base=base, axes={"seed": [0]})
    scaling("sweep", sweep_file, "--root", tmp_path / "sweeps")
    sweep = tmp_path / "sweeps" / "tiny"
    proc = scaling("run", sweep, "--local", "--progress", "false", check=False, timeout=900)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = error_line(proc)
    assert "1 of 1 runs did not finish: s0 (failed/pending)" in line
    run = sweep / "runs" / "s0"
    assert state(run)["train"] == "failed" and state(run)["transfer"] == "pending"
    assert "not finite at step" in state(run)["error"]
    assert not (run / "final").exists() and not (run / "transfer").exists()


def _fake_controller(tmp_path: Path) -> dict:
    """PATH with an squeue that fails as when slurmctld is down."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"
    squeue.write_text("#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm "
                      "controller (connect failure)' >&2\nexit 1\n")
    squeue.chmod(squeue.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_status_exits_nonzero_when_the_controller_is_unreachable(tmp_path):
    sweep = fake_sweep(tmp_path)
    run_ids = sorted(p.name for p in (sweep / "runs").iterdir())
    (sweep / "slurm").mkdir()
    (sweep / "slurm" / "jobs.json").write_text(json.dumps({"schema_version": 1, "submissions": [
        {"arrays": [{"job": "77", "name": "fake-train", "phase": "train", "shape": "1x1",
                     "run_ids": run_ids}]}]}))
    proc = scaling("status", sweep, env=_fake_controller(tmp_path), check=False)
    assert proc.returncode == 1
    assert "controller is unreachable" in error_line(proc)
    assert "Unable to contact slurm controller" in error_line(proc)
    assert all(r in proc.stdout for r in run_ids)  # the state.json columns still print


def test_status_of_a_sweep_without_jobs_needs_no_controller(tmp_path):
    sweep = fake_sweep(tmp_path)
    proc = scaling("status", sweep, env=_fake_controller(tmp_path), check=False)
    assert proc.returncode == 0, proc.stderr
    assert "2 runs: 2 done" in proc.stdout


@pytest.mark.parametrize("command,kind", [("collect", "empty"), ("collect", "not_a_sweep"),
                                          ("collect", "missing"), ("fit", "not_a_sweep"),
                                          ("status", "empty")])
def test_commands_on_a_folder_that_is_not_a_sweep_exit_nonzero_and_write_nothing(
        tmp_path, command, kind):
    folder = tmp_path / "here"
    if kind != "missing":
        folder.mkdir()
    if kind == "not_a_sweep":
        (folder / "notes.txt").write_text("hello")
    before = tree(tmp_path)
    proc = scaling(command, folder, check=False)
    assert proc.returncode != 0
    line = error_line(proc)
    assert str(folder) in line and ("sweep folder" in line or "does not exist" in line)
    assert tree(tmp_path) == before


def test_collect_of_a_sweep_whose_runs_folder_is_empty_exits_nonzero(tmp_path):
    sweep = tmp_path / "s"
    (sweep / "runs").mkdir(parents=True)
    (sweep / "sweep.yaml").write_text("name: s\n")
    proc = scaling("collect", sweep, check=False)
    assert proc.returncode != 0 and "holds no runs" in error_line(proc)
    assert not (sweep / "results.parquet").exists()


def test_report_on_an_all_failed_sweep_shows_the_run_table(tmp_path):
    sweep = fake_sweep(tmp_path, all_failed=True)
    proc = scaling("report", sweep, env=report_env(), timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (sweep / "report" / "report.html").read_text()
    assert "No run has finished" in html
    for run in (sweep / "runs").iterdir():
        assert f"boom in {run.name}" in html  # each run's error, in the run table
