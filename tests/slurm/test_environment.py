"""contract/jobenv.py: one JobEnvironment for everything Slurm and torchrun set, read from
fake environments (no cluster), and the only reader of those variables."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

from contract.jobenv import (
    SHELL_JOB_ID,
    SHELL_RESTARTS,
    JobEnvironment,
    expand_hostlist,
    hostnames,
    without_slurm,
)
from slurm.tasks import task_script

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_scontrol(monkeypatch, tmp_path):
    """PATH without Slurm's tools: the host list is expanded by our own parser."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))


def test_a_one_task_job_on_one_node_is_a_single_process_in_a_slurm_job(no_scontrol):
    job = JobEnvironment.from_env({"SLURM_JOB_ID": "42", "SLURM_NTASKS": "1",
                                   "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
                                   "SLURM_NODEID": "0", "SLURM_JOB_NUM_NODES": "1",
                                   "SLURM_JOB_NODELIST": "node1"})
    assert job.is_slurm and job.job_id == "42" and job.raw_job_id == "42"
    assert (job.rank, job.world_size, job.local_rank, job.source) == (0, 1, 0, "single")
    assert job.hostnames == ["node1"] and job.num_nodes == 1 and job.restart_count == 0
    assert (job.master_addr, job.master_port) == ("127.0.0.1", 29500)  # nothing to meet


def test_two_nodes_by_two_tasks_give_every_rank_its_place_and_one_rendezvous(no_scontrol):
    common = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "4", "SLURM_JOB_NUM_NODES": "2",
              "SLURM_JOB_NODELIST": "gpu[07-08]"}
    jobs = [JobEnvironment.from_env({**common, "SLURM_PROCID": str(p),
                                     "SLURM_LOCALID": str(p % 2), "SLURM_NODEID": str(p // 2)})
            for p in range(4)]
    assert [j.rank for j in jobs] == [0, 1, 2, 3]
    assert [j.local_rank for j in jobs] == [0, 1, 0, 1]
    assert [j.node_rank for j in jobs] == [0, 0, 1, 1]
    assert {(j.world_size, j.num_nodes, j.source) for j in jobs} == {(4, 2, "slurm")}
    assert [j.is_main for j in jobs] == [True, False, False, False]
    assert {tuple(j.hostnames) for j in jobs} == {("gpu07", "gpu08")}
    assert {(j.master_addr, j.master_port) for j in jobs} == {("gpu07", 24242)}


def test_an_array_task_is_named_array_underscore_task_and_gets_its_own_port(no_scontrol):
    env = {"SLURM_JOB_ID": "103", "SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "3",
           "SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_LOCALID": "1",
           "SLURM_JOB_NODELIST": "cpu1"}
    job = JobEnvironment.from_env(env)
    assert job.job_id == "100_3" and job.raw_job_id == "103"
    assert (job.array_job_id, job.array_task_id) == ("100", "3")
    assert (job.master_addr, job.master_port) == ("cpu1", 20103)  # from its own job id
    sibling = JobEnvironment.from_env({**env, "SLURM_JOB_ID": "104", "SLURM_ARRAY_TASK_ID": "4"})
    assert sibling.master_port != job.master_port


def test_a_requeued_job_counts_its_restarts_and_keeps_its_id():
    env = {"SLURM_JOB_ID": "103", "SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "3"}
    first = JobEnvironment.from_env(env)
    again = JobEnvironment.from_env({**env, "SLURM_RESTART_COUNT": "2"})
    assert (first.restart_count, again.restart_count) == (0, 2)
    assert first.job_id == again.job_id == "100_3"


def test_host_lists_expand_as_slurm_writes_them(no_scontrol):
    cases = {"gpu[07-08]": ["gpu07", "gpu08"],
             "a[1-3,5],b2": ["a1", "a2", "a3", "a5", "b2"],
             "node-[001-003]-ib": ["node-001-ib", "node-002-ib", "node-003-ib"],
             "r[1-2]n[1-2]": ["r1n1", "r1n2", "r2n1", "r2n2"],
             "login1,gpu2": ["login1", "gpu2"], "wslmn[1-2]": ["wslmn1", "wslmn2"],
             "single": ["single"], "gpu[9-11]": ["gpu9", "gpu10", "gpu11"]}
    for nodelist, hosts in cases.items():
        assert expand_hostlist(nodelist) == hosts, nodelist
        assert hostnames(nodelist) == hosts, nodelist  # no scontrol: the parser
    for unreadable in ("gpu[07-", "[abc", "x]", "a[]", "a[1-x]"):
        assert expand_hostlist(unreadable) == [unreadable]  # kept whole


def test_scontrol_expands_the_host_list_where_slurm_is_installed(monkeypatch, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "scontrol").write_text("#!/bin/sh\n[ \"$1 $2\" = 'show hostnames' ] && "
                                   "printf 'alpha\\nbeta\\n'\n")
    (fake / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    job = JobEnvironment.from_env({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "2",
                                   "SLURM_PROCID": "0", "SLURM_JOB_NODELIST": "weird{1,2}"})
    assert job.hostnames == ["alpha", "beta"] and job.master_addr == "alpha"


def test_the_parser_agrees_with_the_installed_scontrol(tmp_path):
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        pytest.skip("scontrol is not installed (apt-get install slurm-wlm)")
    conf = tmp_path / "slurm.conf"  # scontrol wants a configuration, not a controller
    conf.write_text("ClusterName=t\nSlurmctldHost=localhost\n")
    env = {"PATH": "/usr/bin:/bin", "SLURM_CONF": str(conf)}
    for nodelist in ["gpu[07-08]", "a[1-3,5],b2", "r[1-2]n[1-2]", "login1,gpu2",
                     "gpu[9-11]", "n[001-002],m[8-10]"]:
        proc = subprocess.run([scontrol, "show", "hostnames", nodelist], capture_output=True,
                              text=True, timeout=30, env=env)
        assert proc.returncode == 0, proc.stderr
        assert expand_hostlist(nodelist) == proc.stdout.split(), nodelist


def test_outside_slurm_ranks_come_from_torchrun_or_it_is_one_process():
    alone = JobEnvironment.from_env({})
    assert not alone.is_slurm and alone.job_id is None and alone.hostnames == []
    assert (alone.rank, alone.world_size, alone.local_rank, alone.source) == (0, 1, 0, "single")
    assert (alone.master_addr, alone.master_port) == ("127.0.0.1", 29500)
    torchrun = JobEnvironment.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
                                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29411"})
    assert not torchrun.is_slurm
    assert (torchrun.rank, torchrun.world_size, torchrun.local_rank, torchrun.source) == \
        (1, 2, 1, "torchrun")
    assert (torchrun.master_addr, torchrun.master_port) == ("127.0.0.1", 29411)


def test_torchrun_inside_an_allocation_wins_over_srun_but_the_job_stays_slurms():
    job = JobEnvironment.from_env({"SLURM_JOB_ID": "9", "SLURM_NTASKS": "4",
                                   "SLURM_PROCID": "3", "SLURM_JOB_NODELIST": "n[1-2]",
                                   "RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "29600"})
    assert (job.rank, job.world_size, job.source) == (0, 2, "torchrun")
    assert job.is_slurm and job.job_id == "9" and job.master_port == 29600


def test_a_garbled_variable_is_one_line_naming_it():
    with pytest.raises(ValueError, match=r"^SLURM_PROCID='x' is invalid: .*whole number"):
        JobEnvironment.from_env({"SLURM_PROCID": "x", "SLURM_NTASKS": "2"})
    with pytest.raises(ValueError, match=r"^SLURM_RESTART_COUNT='two' is invalid"):
        JobEnvironment.from_env({"SLURM_RESTART_COUNT": "two"})


def test_the_task_scripts_shell_spelling_names_the_same_job():
    """The task script logs `job=... restarts=...` before Python starts: its shell spelling
    (rendered from SHELL_JOB_ID / SHELL_RESTARTS) must say what JobEnvironment says."""
    script = task_script("/tmp/sweep", "train", "python3")
    assert f'JOB="{SHELL_JOB_ID}"' in script and f"restarts={SHELL_RESTARTS} " in script
    cases = [{}, {"SLURM_JOB_ID": "42"},
             {"SLURM_JOB_ID": "103", "SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "3"},
             {"SLURM_JOB_ID": "103", "SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "0",
              "SLURM_RESTART_COUNT": "2"}]
    for env in cases:
        out = subprocess.run(["bash", "-c", f'echo "{SHELL_JOB_ID} {SHELL_RESTARTS}"'],
                             env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                             text=True, check=True).stdout.split()
        job = JobEnvironment.from_env(env)
        assert out == [job.job_id or "local", str(job.restart_count)], env


def test_a_local_run_inside_an_allocation_sheds_slurms_variables():
    env = {"SLURM_JOB_ID": "1", "SLURM_ARRAY_TASK_ID": "0", "PATH": "/bin", "RANK": "0"}
    assert without_slurm(env) == {"PATH": "/bin", "RANK": "0"}
    assert not JobEnvironment.from_env(without_slurm(env)).is_slurm


# -------------------------------------------------------------------------- the only reader

LAUNCHER_VARS = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}
TEMPLATE = Path("slurm/tasks.py")  # its bash picks the array task's line and srun's shape


def _env_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every place that names a Slurm variable, or reads a launcher one
    (`.get(NAME)`, `getenv(NAME)`, `[NAME]` read, `NAME in ...`; writing them is allowed:
    DeepSpeed and torch.distributed read them back)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value.startswith("SLURM_") and node.value.replace("_", "").isalnum():
            found.append((node.lineno, node.value))
        name = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            attr = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if attr in ("get", "getenv", "pop"):
                name = node.args[0].value
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and \
                isinstance(node.slice, ast.Constant):
            name = node.slice.value
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and \
                any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            name = node.left.value
        if name in LAUNCHER_VARS:
            found.append((node.lineno, name))
    return found


def test_no_module_but_jobenv_reads_slurm_or_launcher_variables():
    offenders = []
    for package in ("contract", "scaling", "slurm", "models", "data", "analysis", "bench"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO)
            if rel in (Path("contract/jobenv.py"), TEMPLATE):
                continue
            offenders += [f"{rel}:{line} {name}"
                          for line, name in _env_reads(ast.parse(path.read_text()))]
    assert not offenders, ("read these through contract.jobenv.JobEnvironment: "
                           + ", ".join(offenders))


def test_the_reader_check_catches_a_direct_read():
    """The check above is only as good as its detector: each way of reading is caught."""
    for code in ('os.environ.get("SLURM_JOB_ID")', 'os.environ["SLURM_PROCID"]',
                 'os.getenv("RANK")', 'env["WORLD_SIZE"]', '"MASTER_ADDR" in os.environ',
                 'k.startswith("SLURM_")', 'env.pop("LOCAL_RANK", None)'):
        assert _env_reads(ast.parse(code)), code
    for code in ('os.environ["RANK"] = "0"', 'os.environ.setdefault("WORLD_SIZE", "1")',
                 '"""see SLURM_JOB_NODELIST"""'):
        assert not _env_reads(ast.parse(code)), code
