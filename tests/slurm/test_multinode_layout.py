"""The documented multi-node GPU layout (docs/slurm.md), rendered without GPUs or a
cluster: a 2-node x 8-GPU run gets one srun task per device, each rank its place, its
device and NCCL, and all of them the same rendezvous on the first host."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from contract.jobenv import hostnames, master_port_for
from scaling.dist import rendezvous
from slurm.tasks import NOCWD
from tests.helpers.slurm_runs import scaling, write_sweep

WIDE = {"device": "cuda", "nodes": 2, "devices_per_node": 8, "cpus_per_rank": 8,
        "mem_gb": 400, "time_min": 1440}
FAKE_SRUN = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$FAKE_OUT/srun.args"
env | grep -E '^(MASTER_|SLURM_NTASKS=|OMP_NUM_THREADS=)' | sort > "$FAKE_OUT/srun.env"
"""


def _render(tmp_path: Path, repo_root: Path, gpus: str) -> tuple[Path, str]:
    sweep = write_sweep(tmp_path, "wide", {"w32": {"resources": WIDE}})
    profile = tmp_path / "gpu.yaml"
    raw = yaml.safe_load((repo_root / "slurm/profiles/gpu-example.yaml").read_text())
    raw["gpus"]["option"] = gpus
    profile.write_text(yaml.safe_dump(raw))
    scaling("submit", sweep, "--dry_run", "--profile", profile)
    script = sweep / "slurm" / "dry-run" / "00-train-2n8gpu-c8-m400g-t1440.sbatch"
    return sweep, script.read_text()


@pytest.mark.integration
def test_two_nodes_by_eight_gpus_render_one_srun_rank_per_device_with_nccl(tmp_path,
                                                                           repo_root):
    sweep, sbatch = _render(tmp_path, repo_root, "gres")
    header = [ln.split(" ", 1)[1] for ln in sbatch.splitlines() if ln.startswith("#SBATCH")]
    for line in ("--nodes=2", "--ntasks-per-node=8", "--cpus-per-task=8",
                 "--gres=gpu:a100:8", "--signal=USR2@300", "--requeue"):
        assert line in header, (line, header)
    assert not any(h.startswith(("--ntasks=", "--gpus-per-task")) for h in header), header
    _, other = _render(tmp_path / "b", repo_root, "gpus-per-node")
    assert "#SBATCH --gpus-per-node=a100:8" in other and "--gres" not in other

    # run the rendered task script as Slurm would, with srun stubbed
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text(FAKE_SRUN)
    (fake / "srun").chmod(0o755)
    exec_line = shlex.split(sbatch.strip().splitlines()[-1])
    assert exec_line[:2] == ["exec", "bash"] and exec_line[3] == "slurm", exec_line
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MASTER_"))}
    env.update(PATH=f"{fake}:{env['PATH']}", FAKE_OUT=str(tmp_path), SLURM_ARRAY_TASK_ID="0",
               SLURM_ARRAY_JOB_ID="4240", SLURM_JOB_ID="4242", SLURM_NTASKS="16",
               SLURM_NNODES="2", SLURM_NTASKS_PER_NODE="8", SLURM_CPUS_PER_TASK="8",
               SLURM_JOB_NODELIST="gpu[07-08]")
    proc = subprocess.run(exec_line[1:], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    args = (tmp_path / "srun.args").read_text().split("\n")
    assert args[:3] == ["--ntasks=16", "--cpus-per-task=8", "--kill-on-bad-exit=1"], args
    # `python -c NOCWD scaling.cli` is `python -m scaling.cli` without the cwd on sys.path
    assert args[3:9] == ["/shared/envs/wsl-scaling/bin/python", "-c", NOCWD, "scaling.cli",
                         "train", "--config"], args
    assert args[9] == str(sweep / "runs" / "w32" / "config.yaml"), args
    assert "OMP_NUM_THREADS=8" in (tmp_path / "srun.env").read_text()

    # each of the 16 tasks srun starts (block distribution: 8 per node) finds its place
    ranks = []
    for proc_id in range(16):
        task_env = {**env, "SLURM_PROCID": str(proc_id), "SLURM_LOCALID": str(proc_id % 8),
                    "SLURM_NODEID": str(proc_id // 8)}
        ranks.append(rendezvous(task_env, use_cuda=True))
    assert [r.rank for r in ranks] == list(range(16))
    assert {r.world_size for r in ranks} == {16}
    assert [r.local_rank for r in ranks] == list(range(8)) * 2  # -> cuda:<local rank>
    assert {r.backend for r in ranks} == {"nccl"} and {r.source for r in ranks} == {"slurm"}
    assert {(r.master_addr, r.master_port) for r in ranks} == {("gpu07", 20000 + 4242)}
    assert rendezvous(task_env, use_cuda=False).backend == "gloo"


def test_the_first_host_is_found_without_scontrol(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol: the fallback parser
    cases = {"gpu[07-08]": "gpu07", "a[1-3,5],b2": "a1", "node-[001-004]-ib": "node-001-ib",
             "login1,gpu2": "login1", "wslmn[1-2]": "wslmn1", "single": "single"}
    for nodelist, first in cases.items():
        assert hostnames(nodelist)[0] == first, nodelist
    assert master_port_for("4242") == 24242 and master_port_for("25000") == 25000


def test_master_address_from_the_environment_wins(monkeypatch):
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1",
           "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "7",
           "MASTER_ADDR": "gpu07-ib", "MASTER_PORT": "31000"}
    r = rendezvous(env)
    assert (r.rank, r.world_size, r.local_rank, r.master_addr, r.master_port) == \
        (3, 4, 1, "gpu07-ib", 31000)


def test_a_lost_peer_becomes_one_clear_error_line(monkeypatch):
    from scaling.dist import DistEnv, failure_line

    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[07-08]")
    env = DistEnv(rank=0, world_size=16, timeout_s=20)
    gloo = RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 20000ms "
                        "for recv operation to complete")
    line = failure_line(gloo, env)
    assert line.startswith("DistributedError: a collective timed out after 20 s "
                           "(resources.collective_timeout_s) on rank 0/16 ("), line
    assert "(nodes gpu[07-08])" in line and "--retry_failed" in line and "\n" not in line
    closed = RuntimeError("[gloo/transport/tcp/pair.cc:534] Connection closed by peer "
                          "[10.0.0.2]:4711")
    assert "lost its connection to a peer rank" in failure_line(closed, env)
    assert failure_line(ValueError("timed out"), env) is None  # not a collective's error
    assert failure_line(gloo, DistEnv(world_size=1)) is None   # nothing distributed
