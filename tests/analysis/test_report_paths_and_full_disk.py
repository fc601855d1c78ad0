"""`scaling report` writes its notebook wherever the sweep lies (a brace in a folder name
is a folder name, not a papermill template) and atomically: a full disk names the file
it could not write and leaves the previous report.ipynb whole."""

from __future__ import annotations

import builtins
import errno
import json

import pytest

from analysis.fakes import make_sweep
from tests.helpers.cli_checks import cli


def _small(root):
    return make_sweep(root, widths=(4,), vocabs=(1000,), images=(1000, 10000, 100000),
                      seeds=(0,), targets=("fine",), problems=False)


def test_a_root_with_braces_gets_its_notebook(tmp_path):
    from analysis import report

    sweep = _small(tmp_path / "roots" / "br{lab}" / "x")

    notebook = report(sweep, execute=False)
    assert notebook == sweep / "report" / "report.ipynb"
    nb = json.loads(notebook.read_text())
    params = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert f'sweep_dir = "{sweep}"' in "".join(params["source"])  # braces and all
    assert nb["metadata"]["papermill"]["output_path"] == str(notebook)  # not the temp file
    assert [p.name for p in (sweep / "report").iterdir()] == ["report.ipynb"]


@pytest.mark.slow
def test_a_root_with_braces_gets_its_executed_report(tmp_path, capsys):
    sweep = _small(tmp_path / "roots" / "br{lab}" / "{0}")
    code, out, line = cli(capsys, "report", sweep)
    assert code == 0 and line == ""
    assert (sweep / "report" / "report.html").is_file()
    assert (sweep / "report" / "findings.json").is_file()


@pytest.fixture
def full_disk(monkeypatch):
    """open() for writing of report.ipynb, report.html or a temporary file beside them
    (`.report.*`) writes half of what it is given, then fails as a full disk does (ENOSPC,
    no file name)."""
    real_open = builtins.open

    class HalfFull:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def __getattr__(self, name):
            return getattr(self.handle, name)

    def fake_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        name = str(file).split("/")[-1]
        if "w" in mode and (name.startswith(".report.") or name.startswith("report.")):
            return HalfFull(handle)
        return handle

    monkeypatch.setattr(builtins, "open", fake_open)


@pytest.mark.parametrize("execute", [False, True])
def test_a_full_disk_names_the_report_and_keeps_the_old_one_whole(tmp_path, capsys, full_disk,
                                                                   execute):
    sweep = _small(tmp_path)
    out = sweep / "report"
    out.mkdir()
    old = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'
    (out / "report.ipynb").write_text(old)
    args = ["report", sweep] if execute else []
    if execute:
        code, _, line = cli(capsys, *args)
        assert code == 1
    else:
        from analysis import report
        from contract.errors import user_message

        with pytest.raises(OSError) as info:
            report(sweep, execute=False)
        line = "error: " + user_message(info.value)[0]
    assert line == (f"error: No space left on device: {out / 'report.ipynb'}: the disk is "
                    "full: free space and rerun")
    assert (out / "report.ipynb").read_text() == old  # not truncated, not replaced
    assert not [p.name for p in out.iterdir() if p.name.startswith(".report.")]
    assert not (out / "report.html").exists()
