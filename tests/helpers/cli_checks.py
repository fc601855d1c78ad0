"""Checks of what a command tells its user: tiny configs, CLI runs, sweep files.

Every CLI check runs the real console entry in a subprocess, so exit codes and what
reaches stderr are exactly what a user sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.engine import TINY, make_run  # noqa: F401
from tests.helpers.engine import env as clean_env  # noqa: F401 (re-exported)

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent

# the tiny run config as a sweep base (no name: the sweep names each run)
BASE = {k: v for k, v in TINY.items() if k != "name"}


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one `error:` line of a failed command; fails the test on a traceback or a
    multi-line dump."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()
             and not ln.startswith(("[IPKernelApp]", "  warnings.warn"))
             and "Warning" not in ln]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert len(lines) <= 2, f"more than the error line on stderr:\n{proc.stderr}"
    return errors[0]


def set_dotted(mapping: dict, dotted: str, value) -> dict:
    node = mapping
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return mapping


def state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under folder with its bytes: 'nothing lost or changed' checks."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def fake_sweep(root: Path, all_failed: bool = False) -> Path:
    """A small finished sweep from `analysis.fakes` (no training); with all_failed every
    run failed in training and has no transfer result."""
    import shutil

    from analysis.fakes import make_sweep

    sweep = make_sweep(root, widths=(4,), vocabs=(1000,), images=(1000, 10000), seeds=(0,),
                       targets=("fine",), problems=False)
    if all_failed:
        for run in (sweep / "runs").iterdir():
            shutil.rmtree(run / "transfer", ignore_errors=True)
            (run / "metrics.jsonl").unlink(missing_ok=True)
            st = state(run)
            st.update(train="failed", transfer="pending",
                      error=f"RuntimeError: boom in {run.name}")
            (run / "state.json").write_text(json.dumps(st))
    return sweep


def report_env() -> dict:
    """nbconvert's templates live in the shared venv's share/jupyter."""
    import nbconvert

    install = Path(nbconvert.__file__).resolve().parents[4]  # <prefix>/lib/pythonX/site-packages
    paths = [str(p / "share" / "jupyter") for p in (Path(sys.prefix), install)
             if (p / "share" / "jupyter").is_dir()]
    return {"JUPYTER_PATH": os.pathsep.join(paths)} if paths else {}


def cli(capsys, *args) -> tuple[int, str, str]:
    """`scaling ARGS...` in this process (fast): (exit code, stdout, the one error line or
    ''). An uncaught traceback propagates and fails the test; one that was printed (by a
    logger, a library or a `traceback.print_exc`) fails it here, and so does a failure
    with no `error:` line, with more than one, or with anything else on stderr."""
    from scaling.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback (most recent call last)" not in err + out, err + out
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    if code == 0:
        assert not lines, err
        return code, out, ""
    assert len(lines) == 1, f"exit {code} needs exactly one error line:\n{err}"
    noise = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("error:")
             and not ln.startswith(("warning:", "INFO", "WARNING")) and "Warning" not in ln]
    assert not noise, f"more than the error line on stderr:\n{err}"
    return code, out, lines[0]
