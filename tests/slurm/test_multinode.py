"""Multi-node for real: `scaling submit` of real sweeps on a two-node Slurm cluster that runs
on this machine (tests/slurm/multinode_cluster.py: a network, UTS and mount namespace per
node, a private bridge between them).

What runs here: ranks started by srun on two hosts with two addresses, rendezvous on the
first host of the allocation, gloo traffic across the bridge, USR2 and requeue of a two-node
task, a node's link cut mid-run. What only a GPU cluster can show: NCCL, InfiniBand, GPU
placement (docs/slurm.md, "Multi-node").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.slurm_runs import clean_env, state, wait_for, write_profile, write_sweep
from tests.slurm.conftest import ON_CI, TIMINGS
from tests.slurm.multinode_cluster import TwoNodeCluster, Unavailable

pytestmark = pytest.mark.slurm

STEPS = 120  # of 16 images: long enough to be signalled or cut mid-run, a few s of compute
COMMON = {"optim.images_seen": 16 * STEPS, "checkpoint.every_steps": 10,
          "transfer.floor": False}
FSDP2 = {**COMMON, "shard.strategy": "fsdp2"}
DS3 = {**COMMON, "shard.strategy": "deepspeed", "shard.zero_stage": 3}
TWO_NODES = {"resources.nodes": 2, "resources.devices_per_node": 1}
ONE_NODE = {"resources.nodes": 1, "resources.devices_per_node": 2}
COLLECTIVE_TIMEOUT_S = 20  # below the cluster's SlurmdTimeout (60 s)


def _up(base: Path, **kw) -> TwoNodeCluster:
    try:
        return TwoNodeCluster(base=base, **kw).up()
    except Unavailable as exc:
        message = f"two-node Slurm unavailable: {exc}"
        if ON_CI:
            pytest.fail(f"{message} (CI=true: the Slurm tests never skip)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    cluster = _up(tmp_path_factory.mktemp("two-node-cluster"))
    TIMINGS.append(f"two-node cluster: up in {cluster.timings['up_s']:.2f} s "
                   f"(network {cluster.timings['network_s']:.2f} s)")
    yield cluster
    cluster.down()
    TIMINGS.append(f"two-node cluster: down in {cluster.timings['down_s']:.2f} s")
    left = cluster.leftovers()
    assert not left, f"the two-node cluster left {left}"


# --------------------------------------------------------------------------- helpers

def scaling(cluster: TwoNodeCluster, *args, check: bool = True, timeout: int = 120):
    proc = subprocess.run([sys.executable, "-m", "scaling.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env=cluster.env(clean_env()))
    if check and proc.returncode != 0:
        raise AssertionError(f"scaling {' '.join(map(str, args))} -> {proc.returncode}\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def _jobs(sweep: Path) -> list[dict]:
    return json.loads((sweep / "slurm" / "jobs.json").read_text())["submissions"]


def job_ids(sweep: Path) -> list[str]:
    return [str(j) for s in _jobs(sweep)
            for j in [a["job"] for a in s["arrays"]] + [s["finish"]["job"]]]


def train_task(sweep: Path, run_id: str, submission: int = 0) -> str:
    array = next(a for a in _jobs(sweep)[submission]["arrays"]
                 if a["phase"] == "train" and run_id in a["run_ids"])
    return f"{array['job']}_{array['run_ids'].index(run_id)}"


def train_log(sweep: Path, run_id: str) -> str:
    """Every train log of a run, oldest submission first (a requeue appends to its log)."""
    text = ""
    for sub in _jobs(sweep):
        for a in sub["arrays"]:
            if a["phase"] == "train" and run_id in a["run_ids"]:
                log = sweep / "slurm" / "logs" / \
                    f"{a['name']}_{a['job']}_{a['run_ids'].index(run_id)}.out"
                text += log.read_text(errors="replace")
    return text


def in_queue(cluster: TwoNodeCluster, ids: list[str]) -> bool:
    proc = cluster.run(["squeue", "-h", "-j", ",".join(ids)])
    return proc.returncode == 0 and bool(proc.stdout.strip())


def wait_gone(cluster: TwoNodeCluster, ids: list[str], timeout: float) -> None:
    wait_for(lambda: not in_queue(cluster, ids), timeout, f"jobs {ids} to leave the queue",
             every=0.3)


def scontrol_job(cluster: TwoNodeCluster, key: str) -> dict:
    out = cluster.run(["scontrol", "-o", "show", "job", key]).stdout.splitlines()
    return dict(t.split("=", 1) for t in (out[0].split() if out else []) if "=" in t)


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"]
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_curve(got: list[float], ref: list[float], rel: float = 1e-5) -> None:
    assert len(got) == len(ref) == STEPS, (len(got), len(ref))
    worst = max(abs(a - b) / abs(b) for a, b in zip(got, ref))
    assert worst <= rel, f"loss curves differ: max relative difference {worst:.2e}"


def stepping(run_dir: Path, steps: int) -> bool:
    s = state(run_dir)
    assert s.get("train") not in ("failed", "done"), s
    return s.get("train") == "running" and s.get("images_seen", 0) >= 16 * steps


def checkpointed(run_dir: Path, min_step: int = 1) -> bool:
    ckpts = [p for p in (run_dir / "checkpoints").glob("*") if (p / "COMPLETE").is_file()]
    return any(int(p.name) >= min_step for p in ckpts)


# --------------------------------------------------------------------------- cluster

def test_cluster_comes_up_in_seconds_and_tear_down_leaves_nothing_behind(tmp_path):
    """A second cluster (own names, subnet and ports): a two-node job really runs on two
    hosts with two addresses, and down() removes daemons, job processes, namespaces and
    links even while a job is still running."""
    cluster = _up(tmp_path / "c", prefix="wslmt", subnet=78, ctld_port=6927, slurmd_port=6928)
    try:
        up_s = cluster.timings["up_s"]
        out = cluster.run(["srun", "-N2", "-l", "sh", "-c",
                           "echo $(hostname) $(hostname -I) $(getent hosts wslmt1)"]).stdout
        lines = sorted(out.splitlines())
        assert lines == ["0: wslmt1 10.78.0.11 10.78.0.11 wslmt1",
                         "1: wslmt2 10.78.0.12 10.78.0.11 wslmt1"], out
        # nothing started in a node can reach beyond the bridge: no route but the subnet
        routes = subprocess.run(["ip", "-n", cluster.netns("wslmt1"), "route"],
                                capture_output=True, text=True).stdout
        assert routes.split() and "default" not in routes and "10.78.0.0/24" in routes
        job = cluster.run(["sbatch", "--parsable", "-N2", f"--output={tmp_path}/j.out",
                           "--wrap", "srun -N2 sleep 600"]).stdout.strip()
        wait_for(lambda: len(cluster.processes("sleep")) == 2, 30, "the two-node job to run")
        sleeps = cluster.processes("sleep")
        assert scontrol_job(cluster, job)["JobState"] == "RUNNING"
    finally:
        cluster.down()
    TIMINGS.append(f"leak-check cluster: up {up_s:.2f} s, down with a running 2-node job "
                   f"{cluster.timings['down_s']:.2f} s")
    assert cluster.leftovers() == []
    assert not any(Path(f"/proc/{p}").exists() and Path(f"/proc/{p}/stat").read_text()
                   .rsplit(")", 1)[-1].split()[0] != "Z" for p in sleeps)
    assert up_s < 30 and cluster.timings["down_s"] < 30


# --------------------------------------------------------------------------- the sweep

@pytest.fixture(scope="module")
def sweep_a(two_nodes, tmp_path_factory):
    """FSDP2 on 2 nodes x 1 rank and on 1 node x 2 ranks; DeepSpeed ZeRO-3 on 2 nodes,
    preempted (USR2) once mid-run. One submission; returns (sweep, usr2 task, seconds)."""
    root = tmp_path_factory.mktemp("mn-sweeps")
    sweep = write_sweep(root, "mn", {"fsdp2-2n": {**FSDP2, **TWO_NODES},
                                     "fsdp2-1n": {**FSDP2, **ONE_NODE},
                                     "ds3-2n": {**DS3, **TWO_NODES}})
    profile = write_profile(root / "profile.yaml")
    start = time.perf_counter()
    scaling(two_nodes, "submit", sweep, "--profile", profile)
    ds3 = sweep / "runs" / "ds3-2n"
    wait_for(lambda: stepping(ds3, 12) and checkpointed(ds3, 10), 600,
             "the DeepSpeed run to checkpoint and keep stepping")
    task = train_task(sweep, "ds3-2n")
    assert scontrol_job(two_nodes, task)["NodeList"] == "wslmn[1-2]"
    two_nodes.run(["scancel", "--signal=USR2", task], check=True)
    wait_gone(two_nodes, job_ids(sweep), timeout=780)  # ~2 min on an idle 2-core machine
    seconds = time.perf_counter() - start
    TIMINGS.append(f"two-node sweep (fsdp2 2x1 + 1x2, deepspeed 2x1 preempted once; "
                   f"{STEPS} steps + transfer each): submit to done {seconds:.1f} s")
    return sweep, task, seconds


@pytest.mark.slow
def test_fsdp2_on_two_nodes_matches_the_same_run_on_one_node(sweep_a):
    sweep, _, _ = sweep_a
    two, one = sweep / "runs" / "fsdp2-2n", sweep / "runs" / "fsdp2-1n"
    for run in (two, one):
        s = state(run)
        assert (s["train"], s["transfer"], s["attempts"]) == ("done", "done", 1), (run, s)
    log = train_log(sweep, "fsdp2-2n")
    # ranks started by srun, one per node, both meeting rank 0 on the first host
    lines = [ln for ln in log.splitlines() if "gloo rendezvous at" in ln]
    assert len(lines) == 2, log[-2000:]
    hosts = sorted(ln.split(" on ")[1].split(":")[0] for ln in lines)
    masters = {ln.split(" at ")[1].split(",")[0] for ln in lines}
    assert hosts == ["wslmn1", "wslmn2"] and len(masters) == 1, lines
    assert next(iter(masters)).startswith("wslmn1:"), masters
    one_log = train_log(sweep, "fsdp2-1n")
    assert sorted(ln.split(" on ")[1].split(":")[0] for ln in one_log.splitlines()
                  if "gloo rendezvous at" in ln) == ["wslmn1", "wslmn1"]
    assert json.loads((two / "memory.json").read_text())["world_size"] == 2
    assert_same_curve(losses(two), losses(one))


@pytest.mark.slow
def test_deepspeed_zero3_on_two_nodes_finishes_and_resumes_from_its_checkpoint(sweep_a):
    sweep, _, _ = sweep_a
    run = sweep / "runs" / "ds3-2n"
    s = state(run)
    assert (s["train"], s["transfer"], s["attempts"]) == ("done", "done", 2), s
    log = train_log(sweep, "ds3-2n")
    resumed = [ln for ln in log.splitlines() if ": resumed from checkpoints/" in ln]
    assert sorted(ln.split(" on ")[1].split(":")[0] for ln in resumed) == \
        ["wslmn1", "wslmn2"], log[-2000:]
    step = {int(ln.rsplit("(step ", 1)[1].rstrip(")")) for ln in resumed}
    assert len(step) == 1 and 10 <= next(iter(step)) < STEPS, step
    final = max((run / "checkpoints").iterdir())
    shards = sorted(p.name for p in (final / "ds").rglob("*optim_states.pt"))
    assert len(shards) == 2 and "rank_0" in shards[0] and "rank_1" in shards[1], shards
    # the resumed ZeRO-3 run computes exactly what uninterrupted FSDP2 does
    assert_same_curve(losses(run), losses(sweep / "runs" / "fsdp2-1n"))


@pytest.mark.slow
def test_usr2_to_a_two_node_task_checkpoints_on_both_nodes_requeues_and_finishes(
        sweep_a, two_nodes):
    sweep, task, _ = sweep_a
    log = train_log(sweep, "ds3-2n")
    stopped = [ln for ln in log.splitlines() if "saved, stopping on SIGUSR2" in ln]
    assert sorted(ln.split(" on ")[1].split(":")[0] for ln in stopped) == \
        ["wslmn1", "wslmn2"], log[-2000:]
    saved = {ln.split("checkpoint step ")[1].split()[0] for ln in stopped}
    resumed = {ln.rsplit("(step ", 1)[1].rstrip(")") for ln in log.splitlines()
               if ": resumed from checkpoints/" in ln}
    assert len(saved) == 1 and saved == resumed, (saved, resumed)
    assert "restarts=0" in log and "restarts=1" in log and log.count("end rc=0") == 1
    info = scontrol_job(two_nodes, task)
    assert (info["JobState"], info["Restarts"]) == ("COMPLETED", "1"), info


# --------------------------------------------------------------------------- node failure

@pytest.mark.slow
def test_a_node_lost_mid_run_fails_the_run_clearly_and_retry_failed_finishes_it(
        two_nodes, sweep_a, tmp_path):
    sweep = write_sweep(tmp_path, "nf", {"fsdp2-2n": {
        **FSDP2, **TWO_NODES, "resources.collective_timeout_s": COLLECTIVE_TIMEOUT_S}})
    run = sweep / "runs" / "fsdp2-2n"
    profile = write_profile(tmp_path / "profile.yaml")
    scaling(two_nodes, "submit", sweep, "--profile", profile)
    wait_for(lambda: stepping(run, 12) and checkpointed(run, 10), 600,
             "the run to checkpoint and keep stepping")
    cut = time.perf_counter()
    two_nodes.link("wslmn2", up=False)
    try:
        wait_for(lambda: state(run).get("train") == "failed", COLLECTIVE_TIMEOUT_S + 30,
                 "the run to fail on the collective timeout", every=0.5)
        detect_s = time.perf_counter() - cut
        # the collective timeout fired well before Slurm's node timeout
        assert detect_s < two_nodes.slurmd_timeout_s, detect_s
        assert two_nodes.sinfo().get("wslmn2", "").rstrip("*") in ("mixed", "allocated",
                                                                   "idle")
    finally:
        two_nodes.link("wslmn2", up=True)
    error = state(run)["error"]
    assert error.startswith("DistributedError: a collective timed out after 20 s "
                            "(resources.collective_timeout_s) on rank 0/2 (wslmn1)"), error
    wait_gone(two_nodes, job_ids(sweep), timeout=300)
    task = train_task(sweep, "fsdp2-2n")
    assert scontrol_job(two_nodes, task)["JobState"] == "FAILED"
    status = scaling(two_nodes, "status", sweep).stdout
    row = next(ln for ln in status.splitlines() if ln.startswith("fsdp2-2n"))
    assert "failed" in row and "FAILED" in row and "DistributedError: a collective timed " \
        "out after 20 s" in row, status
    TIMINGS.append(f"node failure: link down -> run failed in {detect_s:.1f} s "
                   f"(collective timeout {COLLECTIVE_TIMEOUT_S} s)")

    wait_for(lambda: two_nodes.sinfo() == {"wslmn1": "idle", "wslmn2": "idle"}, 60,
             "both nodes to be idle again")
    scaling(two_nodes, "submit", sweep, "--profile", profile, "--retry_failed")
    wait_gone(two_nodes, job_ids(sweep), timeout=600)
    s = state(run)
    assert (s["train"], s["transfer"], s["attempts"], s["error"]) == \
        ("done", "done", 2, None), s
    resumed = [ln for ln in train_log(sweep, "fsdp2-2n").splitlines()
               if ": resumed from checkpoints/" in ln]
    assert len(resumed) == 2, resumed
    # resumed from the last checkpoint before the cut, computing what an uninterrupted
    # run computes
    assert_same_curve(losses(run), losses(sweep_a[0] / "runs" / "fsdp2-1n"))
