"""The `scaling` CLI: torch-free commands, bare boolean flags, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from scaling.cli import normalize_bool_flags


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "scaling.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_bare_boolean_flags_become_true_and_explicit_values_are_kept():
    options = {"--local", "--retry_failed"}
    assert normalize_bool_flags(["x", "--local"], options) == ["x", "--local=true"]
    assert normalize_bool_flags(["--local", "false", "x"], options) == ["--local", "false", "x"]
    assert normalize_bool_flags(["--local", "--retry_failed", "x"], options) == \
        ["--local=true", "--retry_failed=true", "x"]


def test_options_come_from_the_typed_function_or_config_behind_each_command():
    """Bare flags and did-you-mean read the signatures and dataclasses, not the parser's
    private tables: a bool field deep in the run config is a flag, a typo finds its key."""
    from scaling.cli import _bool_options, parse_error_line

    assert {"--local", "--progress", "--retry_failed"} == _bool_options(["run"])
    assert {"--logging.progress", "--transfer.finetune.nesterov"} <= _bool_options(["train"])
    assert "--optim.lr_per_256" not in _bool_options(["train"])
    assert _bool_options(["data", "materialize"]) == {"--overwrite"}
    line = parse_error_line(["train", "--optim.lr_per25", "1"],
                            "unrecognized arguments: --optim.lr_per25 1")
    assert line.endswith("did you mean '--optim.lr_per_256'?")


@pytest.mark.integration
def test_torch_free_commands_do_not_import_torch(tmp_path):
    sweep = tmp_path / "s"
    (sweep / "runs" / "a").mkdir(parents=True)
    code = ("import sys, scaling, scaling.cli, analysis, slurm.local\n"
            f"scaling.cli.main(['status', {str(sweep)!r}])\n"
            "scaling.cli.build_parser()\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.integration
def test_bad_sweep_file_gives_one_line_error_and_no_traceback(tmp_path, repo_root):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "b", "base": str(repo_root / "configs/base-cpu.yaml"),
                                   "axes": {"model.widht_per_group": [4]}}))
    proc = run_cli("sweep", str(bad), "--root", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: unknown field 'model.widht_per_group': did you "
                                   "mean 'model.width_per_group'?")


@pytest.mark.integration
def test_transfer_refuses_an_unfinished_trunk(tmp_path, repo_root):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text((repo_root / "configs" / "base-cpu.yaml").read_text())
    proc = run_cli("transfer", "--config", str(run / "config.yaml"))
    assert proc.returncode == 1
    assert "train phase is 'pending', not 'done'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.integration
def test_print_config_shows_every_section(repo_root):
    proc = run_cli("train", "--config", str(repo_root / "configs" / "base-cpu.yaml"),
                   "--print_config")
    assert proc.returncode == 0, proc.stderr
    printed = yaml.safe_load(proc.stdout)
    for section in ("model", "data", "optim", "shard", "resources", "checkpoint", "transfer"):
        assert section in printed
    assert printed["model"]["stem"] == "small"


@pytest.mark.integration
def test_run_without_local_explains_what_to_do(tmp_path):
    proc = run_cli("run", str(tmp_path))
    assert proc.returncode == 2 and "--local is required" in proc.stderr


@pytest.mark.integration
def test_data_materialize_writes_shards_and_refuses_to_overwrite_without_the_flag(
        tmp_path, repo_root):
    base = str(repo_root / "configs" / "base-cpu.yaml")
    out = tmp_path / "wds"
    first = run_cli("data", "materialize", base, str(out), "--n", "40", "--shard_size", "20")
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in out.glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    again = run_cli("data", "materialize", base, str(out), "--n", "40")
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert "not empty" in again.stderr
    forced = run_cli("data", "materialize", base, str(out), "--n", "40", "--overwrite")
    assert forced.returncode == 0, forced.stderr
