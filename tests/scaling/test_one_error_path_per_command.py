"""One error path for every subcommand: one `error:` line (did-you-mean for
parse errors, the file named for unreadable files), a non-zero exit, no traceback and
nothing written."""

from __future__ import annotations

import errno
import os
import tempfile

import pytest

from tests.helpers.cli_checks import cli, fake_sweep, make_run, tree
from tests.helpers.slurm_runs import scaling, write_sweep_file


@pytest.mark.integration
def test_parse_errors_are_one_line_with_did_you_mean(tmp_path):
    proc = scaling("run", tmp_path, "--local", "--paralel", "3", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: unrecognized arguments: --paralel 3: did you mean "
                                   "'--parallel'? (see `scaling run --help`)")


def test_parse_error_did_you_mean_for_commands_and_config_keys(tmp_path, capsys):
    code, _, line = cli(capsys, "statsu", tmp_path)
    assert code == 2 and "did you mean 'status'?" in line
    run = make_run(tmp_path)
    (run / "config.yaml").write_text("optim: {lr_per25: 1}\n")
    code, _, line = cli(capsys, "train", "--config", run / "config.yaml")
    # a key in a file is named as `scaling sweep` names it (one reader, one message)
    assert code == 2 and "'optim.lr_per25'" in line and "did you mean 'optim.lr_per_256'" in line
    code, _, line = cli(capsys, "data", "materialise", "x", "y")
    assert code == 2 and "did you mean 'materialize'?" in line


@pytest.mark.parametrize("parallel", ["0", "-3"])
def test_parallel_below_one_is_refused(tmp_path, capsys, parallel):
    sweep = fake_sweep(tmp_path)
    before = tree(sweep)
    code, _, line = cli(capsys, "run", sweep, "--local", "--parallel", parallel)
    assert code == 2 and f"parallel={int(parallel)} is invalid: use at least 1" in line
    assert tree(sweep) == before


def test_empty_seeds_are_refused(tmp_path, capsys):
    code, _, line = cli(capsys, "sweep", write_sweep_file(tmp_path, seeds=[]),
                        "--root", tmp_path / "sweeps")
    assert code == 2 and "seeds=[] is invalid: use a non-empty list of integers" in line
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize("content,why", [
    (b'{"train": "done", ', "is not readable JSON (JSONDecodeError)"),
    (b'["done"]', "holds list, not a mapping"),
    (b'{"train": "done", "transfer": "done", "attempts": "two"}',
     "attempts='two' has the wrong type"),
    (b'{"train": "finished"}', "train='finished' is not a phase"),
    (b'{"train": "running", "heartbeat": "yesterday"}', "heartbeat='yesterday' is not an ISO time"),
    (b'{"train": "done", "error": "\xff\xfe"}', "is not readable JSON (UnicodeDecodeError)"),
])
def test_status_reads_a_corrupt_state_json_as_failed_naming_the_file(tmp_path, capsys, content,
                                                                      why):
    sweep = fake_sweep(tmp_path)
    run = sorted((sweep / "runs").iterdir())[0]
    (run / "state.json").write_bytes(content)
    code, out, line = cli(capsys, "status", sweep)
    assert code == 0 and line == ""
    row = next(r for r in out.splitlines() if r.startswith(run.name))
    assert " failed " in row and f"{run / 'state.json'} is corrupt: {why}" in row
    assert (run / "state.json").read_bytes() == content  # reading never rewrites it


def test_a_stale_running_heartbeat_that_is_not_a_time_shows_stale(tmp_path, capsys):
    from contract.runfolder import is_stale

    assert is_stale({"train": "running", "heartbeat": "2025-01-01T00:00:00"})  # naive: UTC
    assert not is_stale({"train": "done", "heartbeat": "garbage"})


def test_non_utf8_sweep_file_is_named(tmp_path, capsys):
    sweep_file = tmp_path / "latin1.yaml"
    sweep_file.write_bytes("name: caf\xe9\n".encode("latin-1"))
    code, _, line = cli(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    assert code == 2 and f"{sweep_file} is not UTF-8 text (byte 9): save it as UTF-8" in line


def test_a_read_only_folder_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o555)
    if os.geteuid() == 0:  # root ignores modes: fail the write as the kernel would
        real = tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):
            if dir is not None and str(dir).startswith(str(root)):
                raise PermissionError(errno.EACCES, "Permission denied", str(dir))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        code, _, line = cli(capsys, "sweep", write_sweep_file(tmp_path), "--root", root)
    finally:
        root.chmod(0o755)
    assert code == 1 and "Permission denied" in line and str(root) in line
    assert "check the folder's permissions" in line


def test_fit_unknown_law_or_column_is_one_line_and_writes_nothing(tmp_path, capsys):
    sweep = fake_sweep(tmp_path)
    code, _, line = cli(capsys, "fit", sweep, "--law", "powr")
    assert code == 2 and "law='powr' is not registered: did you mean 'power'?" in line
    code, _, line = cli(capsys, "fit", sweep, "--x", "imagez")
    assert code == 2 and "['imagez'] not in the DataFrame" in line
    assert not (sweep / "results.parquet").exists()


def test_too_long_sweep_name_is_refused(tmp_path, capsys):
    code, _, line = cli(capsys, "sweep", write_sweep_file(tmp_path, name="n" * 300),
                        "--root", tmp_path / "sweeps")
    assert code == 2 and "use at most 100 characters (it is 300" in line
    assert not (tmp_path / "sweeps").exists()
