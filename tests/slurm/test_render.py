"""Rendering and planning without a cluster: valid bash, quoting, validation, no torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from contract.errors import ConfigError
from slurm.profile import load_profile, parse_profile
from slurm.submit import plan
from tests.helpers.slurm_runs import scaling, write_sweep

WIDTHS, SIZES, VOCABS = [4, 8, 16, 32, 48], [3_500_000, 35_000_000, 350_000_000,
                                             3_500_000_000], [100, 300, "matched:fine"]


def paper_grid(root: Path, gpu: bool = True) -> Path:
    """The paper's 5 widths x 4 sizes x 3 vocabularies, written without torch; the two
    widest models ask for 2 nodes, so the grid has two resource shapes. Host memory is
    what 3.5B images need: every rank holds the per-image index (160 B an image,
    contract.config.index_bytes_per_image), 4.2 TiB on 8 ranks."""
    runs = {}
    for w in WIDTHS:
        for n in SIZES:
            for v in VOCABS:
                res = {"device": "cuda" if gpu else "cpu", "devices_per_node": 8 if gpu else 1,
                       "nodes": 2 if w >= 32 else 1, "cpus_per_rank": 8 if gpu else 1,
                       "mem_gb": 4200 if gpu else 540, "time_min": 1440}
                vname = str(v).replace(":", "-")
                runs[f"w{w}-n{n}-v{vname}-s0"] = {
                    "model.width_per_group": w, "data.images": n, "data.vocab": v,
                    "optim.global_batch": 8192, "optim.images_seen": 10 * n,
                    "data.cache": False, "resources": res}  # a config `train` would run
    return write_sweep(root, "paper-grid", runs)


def _bash_n(paths):
    for path in paths:
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{path}: {proc.stderr}"


@pytest.mark.integration
def test_dry_run_of_the_paper_grid_renders_valid_scripts_without_torch(tmp_path, repo_root):
    sweep = paper_grid(tmp_path)
    code = ("import sys\nfrom scaling.cli import main\n"
            f"rc = main(['submit', {str(sweep)!r}, '--dry_run', '--profile', "
            f"{str(repo_root / 'slurm/profiles/gpu-example.yaml')!r}])\n"
            "assert rc == 0, rc\n"
            "assert 'torch' not in sys.modules, 'submit --dry_run imported torch'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "would submit 60 runs in 4 arrays" in proc.stdout, proc.stdout
    out = sweep / "slurm" / "dry-run"
    scripts = sorted(out.glob("*.sbatch"))
    assert len(scripts) == 5
    _bash_n(scripts + sorted(out.glob("*_task.sh")))
    train = (out / "00-train-1n8gpu-c8-m4200g-t1440.sbatch").read_text()
    for line in ("--array=0-35%8", "--nodes=1", "--ntasks-per-node=8", "--cpus-per-task=8",
                 "--gres=gpu:a100:8", "--signal=USR2@300", "--requeue", "--open-mode=append",
                 "--partition=gpu", "--account=my-project", "--qos=normal",
                 "--constraint=a100", "/slurm/logs/%x_%A_%a.out"):
        assert line in train, line
    assert "#SBATCH --nodes=2" in (out / "02-train-2n8gpu-c8-m4200g-t1440.sbatch").read_text()
    transfer = (out / "01-transfer-1n8gpu-c8-m4200g-t1440.sbatch").read_text()
    assert "--gres=gpu:a100:8" in transfer and "--ntasks-per-node=8" in transfer
    assert "--partition=cpu" in (out / "finish.sbatch").read_text()
    assert len((out / "00-train-1n8gpu-c8-m4200g-t1440.tasks").read_text().split()) == 36
    assert "module load cuda/12.4" in train and "export NCCL_SOCKET_IFNAME=ib0" in train
    assert "aftercorr:<paper-grid.train.1n8gpu" in proc.stdout
    assert not (sweep / "slurm" / "jobs.json").exists()  # a dry run records nothing


@pytest.mark.integration
def test_default_profile_is_cpu_only_and_refuses_gpu_runs(tmp_path):
    sweep = paper_grid(tmp_path)
    proc = scaling("submit", sweep, "--dry_run", check=False)
    assert proc.returncode == 2 and "is CPU-only" in proc.stderr, proc.stderr
    cpu = paper_grid(tmp_path / "cpu", gpu=False)
    out = scaling("submit", cpu, "--dry_run").stdout
    assert "would submit 60 runs" in out
    text = "".join(p.read_text() for p in (cpu / "slurm" / "dry-run").glob("*.sbatch"))
    assert "gres" not in text and "gpus" not in text and "--partition" not in text


def test_values_reaching_scripts_are_validated_with_the_field_name():
    bad = [({"partition": "gpu; rm -rf /"}, "partition"),
           ({"account": "a b"}, "account"),
           ({"env": {"A-B": "x"}}, "env.A-B"),
           ({"setup": ["module load x\nrm -rf /"]}, "setup[0]"),
           ({"extra_sbatch": ["--array=0-3"]}, "extra_sbatch[0]"),
           ({"extra_sbatch": ["--comment=$(id)"]}, "extra_sbatch[0]"),
           ({"gpus": {"option": "gpus", "type": "a100"}}, "gpus.option"),
           ({"throttle": 0}, "throttle"),
           ({"partiton": "x"}, "did you mean 'partition'")]
    for raw, field in bad:
        with pytest.raises(ConfigError, match=re.escape(field)):
            parse_profile(raw)


@pytest.mark.integration
def test_env_values_and_paths_are_shell_quoted(tmp_path):
    sweep = write_sweep(tmp_path, "q", {"r0": {}})
    nasty = "$(touch PWNED) `id` 'x' \"y\" ; z"
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"env": {"WSL_NOTE": nasty},
                                       "python": "/opt/my py/bin/python"}))
    scaling("submit", sweep, "--dry_run", "--profile", profile)
    script = next((sweep / "slurm" / "dry-run").glob("00-train*.sbatch")).read_text()
    exports = [line for line in script.splitlines() if line.startswith("export WSL_NOTE=")]
    proc = subprocess.run(["bash", "-c", exports[0] + '\nprintf %s "$WSL_NOTE"'],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.stdout == nasty and not (tmp_path / "PWNED").exists()
    task = (sweep / "slurm" / "dry-run" / "train_task.sh").read_text()
    assert "PYTHON='/opt/my py/bin/python'" in task


@pytest.mark.integration
def test_a_bad_run_id_or_signal_window_is_refused(tmp_path):
    sweep = write_sweep(tmp_path, "s", {"ok": {"resources": {"time_min": 1, "mem_gb": 1}}})
    proc = scaling("submit", sweep, "--dry_run", check=False)
    assert proc.returncode == 2 and "signal_s=120" in proc.stderr
    script = tmp_path / "s" / "slurm"
    script.mkdir(parents=True, exist_ok=True)
    from slurm.tasks import write_task_scripts

    paths = write_task_scripts(tmp_path / "s", sys.executable)
    proc = subprocess.run(["bash", str(paths["train"]), "local", "../../etc"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid run id" in proc.stderr


def test_plan_skips_done_and_failed_runs_unless_retry_failed(tmp_path):
    sweep = write_sweep(tmp_path, "p", {"done": {}, "failed": {}, "trunk": {}, "new": {},
                                        "queued": {}})
    for run, st in (("done", {"train": "done", "transfer": "done"}),
                    ("failed", {"train": "failed", "transfer": "pending"}),
                    ("trunk", {"train": "done", "transfer": "pending"})):
        (sweep / "runs" / run / "state.json").write_text(json.dumps(st))
    profile = load_profile()
    p = plan(sweep, profile, retry_failed=False, active={"queued": "7_4 PENDING"})
    phases = [(a.phase, a.run_ids, a.after) for a in p.arrays]
    assert phases == [("train", ["new"], None), ("transfer", ["new"], 0),
                      ("transfer", ["trunk"], None)]
    assert set(p.skipped) == {"done", "failed", "queued"}
    retry = plan(sweep, profile, retry_failed=True, active={})
    assert retry.arrays[0].run_ids == ["failed", "new", "queued"]


@pytest.mark.integration
def test_runs_of_different_shapes_get_their_own_arrays(tmp_path):
    sweep = write_sweep(tmp_path, "shapes", {
        "a": {}, "b": {"resources": {"cpus_per_rank": 2, "mem_gb": 1, "time_min": 10}},
        "c": {}})
    out = scaling("submit", sweep, "--dry_run", "--throttle", "1").stdout
    assert "would submit 3 runs in 4 arrays" in out
    files = sorted(p.name for p in (sweep / "slurm" / "dry-run").glob("*.sbatch"))
    assert files == ["00-train-1n1cpu-c1-m1g-t10.sbatch", "01-transfer-1n1cpu-c1-m1g-t10.sbatch",
                     "02-train-1n1cpu-c2-m1g-t10.sbatch", "03-transfer-1n1cpu-c2-m1g-t10.sbatch",
                     "finish.sbatch"]
    first = (sweep / "slurm" / "dry-run" / files[0]).read_text()
    assert "--array=0-1%1" in first


@pytest.mark.integration
def test_finish_job_starts_python_without_the_working_directory_on_its_path(tmp_path):
    """The finish job, like the task scripts, must not import a `slurm/` folder that sits
    where the user submitted from (issue 11 item 8)."""
    import shlex
    import subprocess
    import sys

    from slurm.profile import load_profile
    from slurm.sbatch import render_finish
    from slurm.tasks import NOCWD

    sweep = tmp_path / "sw"
    (sweep / "slurm" / "logs").mkdir(parents=True)
    script = render_finish(sweep, tmp_path, load_profile(None)).read_text()
    exec_line = [ln for ln in script.splitlines() if ln.startswith("exec ")][0]
    argv = shlex.split(exec_line)[1:]
    assert argv[1:4] == ["-c", NOCWD, "slurm.finish"] and "-m" not in argv
    shadow = tmp_path / "cwd" / "json"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise SystemExit('shadowed by the cwd')\n")
    out = subprocess.run([sys.executable, "-c", NOCWD, "json.tool", "--help"],
                         cwd=shadow.parent, capture_output=True, text=True)
    assert out.returncode == 0 and "usage" in out.stdout, out.stderr
