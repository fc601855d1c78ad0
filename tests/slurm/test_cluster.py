"""`scaling submit / status / cancel` against a real one-node Slurm (tiny CPU runs)."""

from __future__ import annotations

import subprocess
import time

import pytest

from slurm.status import status_rows
from tests.helpers.slurm_runs import (
    job_ids,
    jobs,
    marks,
    scaling,
    scontrol_job,
    state,
    wait_for,
    wait_gone,
    write_profile,
    write_sweep,
)
from tests.slurm.conftest import SUBMITTED, TIMINGS

pytestmark = pytest.mark.slurm
LONG = {"optim.images_seen": 4800, "checkpoint.every_steps": 100,  # 300 steps
        "transfer.floor": False}


def _submit(sweep, profile, *extra):
    out = scaling("submit", sweep, "--profile", profile, *extra)
    SUBMITTED.extend(job_ids(sweep))
    return out


def _running(run_dir):
    s = state(run_dir)
    assert s.get("train") != "failed", s
    return s.get("train") == "running" and s.get("images_seen", 0) > 0


@pytest.fixture(scope="module")
def tiny_done(slurm_cluster, tmp_path_factory):
    """A two-run sweep submitted once and run to the end; (sweep, seconds, resubmit outputs)."""
    root = tmp_path_factory.mktemp("sweeps")
    sweep = write_sweep(root, "tiny", {"a-128": {"data.images": 128},
                                       "b-256": {"data.images": 256}})
    # the finish job runs its report step here (the other tests turn it off for speed)
    profile = write_profile(root / "profile.yaml", finish={"report": True, "mem_gb": 2})
    start = time.perf_counter()
    _submit(sweep, profile)
    again_queued = scaling("submit", sweep, "--profile", profile).stdout
    wait_gone(job_ids(sweep), timeout=600)
    seconds = time.perf_counter() - start
    TIMINGS.append(f"tiny sweep (2 runs, train 20 steps + transfer, 2 CPUs): submit to done "
                   f"{seconds:.1f} s")
    again_done = scaling("submit", sweep, "--profile", profile).stdout
    return sweep, seconds, again_queued, again_done


def test_every_array_task_ran_its_run_to_done(tiny_done):
    sweep, _, _, _ = tiny_done
    for run in ("a-128", "b-256"):
        s = state(sweep / "runs" / run)
        assert (s["train"], s["transfer"], s["attempts"]) == ("done", "done", 1), s
        assert (sweep / "runs" / run / "transfer" / "fine__linear.json").is_file()
    ends = [m for m in marks(sweep) if m[0] == "end"]
    assert len(ends) == 5 and all("rc=0" in line for line in _end_lines(sweep)), ends
    sub = jobs(sweep)["submissions"]
    assert len(sub) == 1 and [a["phase"] for a in sub[0]["arrays"]] == ["train", "transfer"]


def _end_lines(sweep):
    return [line for log in (sweep / "slurm" / "logs").glob("*.out")
            for line in log.read_text().splitlines() if line.startswith("wsl-scaling: end")]


def test_transfer_waited_for_its_train_task_and_finish_ran_last(tiny_done):
    sweep, _, _, _ = tiny_done
    arrays = jobs(sweep)["submissions"][0]["arrays"]
    assert arrays[1]["dependency"] == f"aftercorr:{arrays[0]['job']}"
    m = marks(sweep)
    for run in ("a-128", "b-256"):
        train_end = max(t for e, p, r, t in m if (e, p, r) == ("end", "train", run))
        transfer_start = min(t for e, p, r, t in m if (e, p, r) == ("start", "transfer", run))
        assert transfer_start > train_end, (run, train_end, transfer_start)
    finish_start = min(t for e, p, _, t in m if (e, p) == ("start", "finish"))
    assert finish_start > max(t for e, p, _, t in m if e == "end" and p != "finish")
    finish = jobs(sweep)["submissions"][0]["finish"]
    assert scontrol_job(finish["job"])["JobState"] == "COMPLETED"
    assert (sweep / "results.parquet").is_file()
    # the report step ran inside the finish job and wrote the page it printed
    html = sweep / "report" / "report.html"
    log = "".join(p.read_text() for p in (sweep / "slurm" / "logs").glob("*finish*.out"))
    assert f"report: {html.resolve()}" in log, log[-2000:]
    assert "points gained per 10x" in html.read_text().lower()


def test_resubmitting_never_duplicates_queued_or_done_runs(tiny_done):
    sweep, _, again_queued, again_done = tiny_done
    assert "nothing to submit" in again_queued and "queued or running" not in again_queued
    assert "nothing to submit" in again_done
    assert len(jobs(sweep)["submissions"]) == 1


def test_status_matches_scontrol(tiny_done):
    sweep, _, _, _ = tiny_done
    rows, _ = status_rows(sweep)
    assert [r["run_id"] for r in rows] == ["a-128", "b-256"]
    transfer_job = jobs(sweep)["submissions"][0]["arrays"][1]["job"]
    for i, row in enumerate(rows):
        assert row["job"] == f"{transfer_job}_{i}"
        assert row["slurm"] == scontrol_job(row["job"])["JobState"] == "COMPLETED"
        assert (row["train"], row["transfer"], row["stale"], row["error"]) == \
            ("done", "done", "", "")
    table = scaling("status", sweep).stdout
    assert "2 runs: 2 done" in table and f"{transfer_job}_1" in table


def test_usr2_checkpoints_requeues_and_finishes_with_two_attempts(slurm_cluster, tmp_path):
    sweep = write_sweep(tmp_path, "preempt", {"long": LONG})
    run = sweep / "runs" / "long"
    _submit(sweep, write_profile(tmp_path / "profile.yaml"))
    wait_for(lambda: _running(run), 90, "the train task to start stepping")
    task = f"{jobs(sweep)['submissions'][0]['arrays'][0]['job']}_0"
    # status while running agrees with the scheduler
    row = {r["run_id"]: r for r in status_rows(sweep)[0]}
    assert row["long"]["job"] == task
    assert row["long"]["slurm"] == scontrol_job(task)["JobState"] == "RUNNING"

    subprocess.run(["scancel", "--signal=USR2", task], check=True, timeout=30)
    pre = wait_for(lambda: (st := state(run)).get("train") == "preempted" and st, 60,
                   "the run to be preempted")
    stopped = pre["images_seen"] // 16  # TINY's global batch: the step it checkpointed at
    wait_gone(job_ids(sweep), timeout=180)
    s = state(run)
    assert (s["train"], s["transfer"], s["attempts"]) == ("done", "done", 2), s
    # the requeued attempt resumed at the preemption checkpoint (a restart would say None)
    assert stopped > 0 and s["resumed_from"] == stopped, (stopped, s)
    info = scontrol_job(task)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", info
    log = next((sweep / "slurm" / "logs").glob("*train*_0.out")).read_text()
    # the requeued attempt appended to the first attempt's log (--open-mode=append)
    assert "start phase=train run=long" in log and "restarts=0" in log and "restarts=1" in log
    assert f"long: resumed from checkpoint {stopped:09d} at step {stopped}" in log
    assert "end rc=0" in log


def test_cancel_leaves_the_run_cancelled_and_not_requeued(slurm_cluster, tmp_path):
    sweep = write_sweep(tmp_path, "stop", {"long": LONG})
    run = sweep / "runs" / "long"
    _submit(sweep, write_profile(tmp_path / "profile.yaml"))
    wait_for(lambda: _running(run), 90, "the train task to start stepping")
    out = scaling("cancel", sweep).stdout
    assert "cancelled jobs" in out
    wait_gone(job_ids(sweep), timeout=60)
    wait_for(lambda: state(run).get("train") == "cancelled", 30, "the run to be cancelled")
    s = state(run)
    assert s["attempts"] == 1 and s["transfer"] == "pending", s
    assert any((run / "checkpoints").iterdir())
    arrays = jobs(sweep)["submissions"][0]["arrays"]
    info = scontrol_job(f"{arrays[0]['job']}_0")
    assert info["JobState"] == "CANCELLED" and info["Restarts"] == "0", info
    assert not list((sweep / "slurm" / "logs").glob("*transfer*"))  # transfer never started
    time.sleep(1)
    assert scontrol_job(f"{arrays[0]['job']}_0")["JobState"] == "CANCELLED"
    rows = status_rows(sweep)[0]
    assert (rows[0]["train"], rows[0]["slurm"]) == ("cancelled", "CANCELLED")
