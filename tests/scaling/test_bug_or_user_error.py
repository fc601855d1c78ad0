"""Bad input is a `UserError` (one `error:` line, exit 2); any other
exception raised deep in a command is a bug and keeps its traceback (exit 1). A plain
ValueError is no longer taken for the user's mistake."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli_checks import clean_env, error_line, fake_sweep
from tests.helpers.slurm_runs import scaling, write_sweep_file

# `scaling status SWEEP` with the table builder replaced by one that raises EXC
_PATCHED_STATUS = """
import sys
import slurm.status

def boom(*args, **kwargs):
    from contract.errors import ConfigError
    raise {exc}

slurm.status.status_rows = boom
from scaling.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _status_raising(tmp_path: Path, exc: str) -> subprocess.CompletedProcess:
    sweep = fake_sweep(tmp_path)
    env = clean_env()
    env.pop("SCALING_DEBUG", None)
    return subprocess.run([sys.executable, "-c", _PATCHED_STATUS.format(exc=exc), "status",
                           str(sweep)], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.integration
def test_an_internal_value_error_deep_in_a_command_keeps_its_traceback(tmp_path):
    proc = _status_raising(tmp_path, 'ValueError("internal invariant broken")')
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "ValueError: internal invariant broken" in proc.stderr
    assert "error:" not in proc.stderr


@pytest.mark.integration
def test_bad_input_raised_at_the_same_place_is_one_line_exit_2(tmp_path):
    proc = _status_raising(tmp_path, 'ConfigError("x=1 is invalid: use 2")')
    assert proc.returncode == 2
    assert error_line(proc) == "error: x=1 is invalid: use 2"


@pytest.mark.integration
def test_bad_model_depth_from_models_is_one_line_exit_2(tmp_path):
    """models/ checks its input with contract.errors.ConfigError: still one line."""
    import copy

    from tests.helpers.cli_checks import BASE, set_dotted

    base = set_dotted(copy.deepcopy(BASE), "model.depth", 7)
    proc = scaling("sweep", write_sweep_file(tmp_path, base=base), "--root", tmp_path / "sweeps",
                   check=False)
    assert proc.returncode == 2, proc.stderr
    assert "model.depth=7 is invalid" in error_line(proc)


@pytest.mark.parametrize("exc", [ValueError("a bug"), NotImplementedError(), KeyError("k"),
                                 RuntimeError("a bug")])
def test_plain_exceptions_are_bugs(exc):
    from contract.errors import user_message

    assert user_message(exc) is None


def test_user_errors_and_user_paths_are_one_line():
    from contract.errors import ConfigError, RunError, user_message

    assert user_message(ConfigError("a=1 is invalid:\n use 2")) == ("a=1 is invalid: use 2", 2)
    assert user_message(RunError("run s0 is locked")) == ("run s0 is locked", 1)
    # raised by the boundary with a message naming the user's path
    assert user_message(FileNotFoundError("data.path='x' does not exist")) == (
        "data.path='x' does not exist", 1)


def test_an_os_error_about_the_users_file_is_one_line_but_about_our_own_file_is_a_bug(
        tmp_path):
    import analysis
    from contract.errors import user_message

    theirs = FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "x"))
    assert user_message(theirs) == (
        f"No such file or directory: {tmp_path / 'x'}: check the path", 1)
    ours = Path(analysis.__file__).parent / "templates" / "missing.ipynb"
    assert user_message(FileNotFoundError(errno.ENOENT, "No such file or directory",
                                          str(ours))) is None
