"""`scaling run --local` runs the same task scripts as the Slurm arrays."""

from __future__ import annotations

import threading
import time

import pytest

from contract.runfolder import RunEntry
from slurm.local import CpuPool, longest_first
from tests.helpers.slurm_runs import scaling, state, write_sweep


@pytest.mark.slow
def test_local_run_goes_through_the_task_scripts(tmp_path):
    sweep = write_sweep(tmp_path, "loc", {
        "r0": {"transfer.floor": False},
        "two-nodes": {"resources": {"nodes": 2, "mem_gb": 1, "time_min": 10}}})
    # the sweep's host estimates (scaling sweep writes them): the executor says the time
    # left at the start and after each run that is not the last
    (sweep / "manifest.csv").write_text("run_id,est_train_s,est_transfer_s\n"
                                        "r0,20,10\ntwo-nodes,40,20\n")
    proc = scaling("run", sweep, "--local", "--parallel", "2", "--progress", "false",
                   timeout=300, check=False)
    out = proc.stdout
    assert "2 at a time; about 1.0 min by the sweep's estimate" in out
    assert out.count("runs, about") == 1 and "[1/2 runs, about " in out
    assert "loc: 2 runs in " in out and "(the sweep estimated 1.0 min)" in out
    # the two-node run cannot run here: the executor says so and exits non-zero
    assert proc.returncode == 1 and "1 of 2 runs did not finish: two-nodes" in proc.stderr
    assert (state(sweep / "runs" / "r0")["train"], state(sweep / "runs" / "r0")["transfer"]) \
        == ("done", "done")
    for phase in ("train", "transfer"):
        assert (sweep / "slurm" / f"{phase}_task.sh").is_file()
        log = (sweep / "logs" / f"r0.{phase}.log").read_text()
        assert f"wsl-scaling: start phase={phase} run=r0 job=local" in log
        assert "end rc=0" in log
    assert "resources.nodes=2 needs a cluster" in out
    again = scaling("run", sweep, "--local", "--progress", "false", check=False).stdout
    assert "1 runs to do" in again  # only the two-node run is left


def test_cpu_pool_runs_what_fits_and_a_too_big_run_alone():
    pool = CpuPool(2)
    events = []

    def job(name, want, hold):
        got = pool.take(want)
        events.append(("in", name, pool.free))
        time.sleep(hold)
        pool.give(got)

    threads = [threading.Thread(target=job, args=("big", 8, 0.2)),
               threading.Thread(target=job, args=("a", 1, 0.2)),
               threading.Thread(target=job, args=("b", 1, 0.2))]
    for t in threads:
        t.start()
        time.sleep(0.02)
    for t in threads:
        t.join()
    assert events[0] == ("in", "big", 0)  # capped at the machine, holding all of it
    assert {e[1] for e in events[1:]} == {"a", "b"} and pool.free == 2


def test_local_executor_starts_the_costliest_runs_first(tmp_path):
    """Longest first, ties in manifest order; a run without an estimate (a folder the
    manifest does not list, an unreadable value) counts as cheapest."""
    rows = [("nan", "nan"), ("short-a", "0.05"), ("long", "0.2"), ("short-b", "0.05"),
            ("odd", "n/a"), ("mid", "0.1"), ("none", None)]
    entries = [RunEntry(name, tmp_path / name, {"run_id": name, "est_device_hours": est})
               for name, est in rows] + [RunEntry("unlisted", tmp_path / "unlisted")]
    assert [p.name for p in longest_first(entries)] == \
        ["long", "mid", "short-a", "short-b", "nan", "odd", "none", "unlisted"]


def test_host_measured_seconds_order_runs_before_device_hours(tmp_path):
    """`scaling sweep`'s host estimate (est_train_s + est_transfer_s) decides the order
    where a run has it: a CPU run's FLOP-based device-hours misjudge it several-fold."""
    rows = [("flops-say-long", {"est_device_hours": "9", "est_train_s": "10",
                                "est_transfer_s": "5"}),
            ("measured-long", {"est_device_hours": "0.001", "est_train_s": "100",
                               "est_transfer_s": "50"}),
            ("hours-only", {"est_device_hours": "0.01"})]   # 36 s
    entries = [RunEntry(name, tmp_path / name, {"run_id": name, **est}) for name, est in rows]
    assert [p.name for p in longest_first(entries)] == \
        ["measured-long", "hours-only", "flops-say-long"]
