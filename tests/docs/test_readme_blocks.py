"""The README's Python code blocks run as written (on a small fake sweep instead
of a trained one), so the notebook flow it shows cannot silently break again."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.cli_checks import REPO, fake_sweep


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_notebook_flow_runs_with_the_path_expand_sweep_returns(tmp_path, monkeypatch):
    blocks = [b for b in python_blocks((REPO / "README.md").read_text())
              if "collect(sweep_dir)" in b]
    assert blocks, "the README no longer shows the `df = collect(sweep_dir)` flow"
    sweep = fake_sweep(tmp_path)
    import scaling
    import slurm.local

    # the flow as written, with training and the report replaced by the fake sweep's
    # files: expand_sweep returns a Path, and everything after it must take that Path
    monkeypatch.setattr(scaling, "expand_sweep", lambda *a, **k: Path(sweep))
    monkeypatch.setattr(slurm.local, "run_local", lambda *a, **k: {})
    monkeypatch.setattr(scaling, "report", lambda d, *a, **k: Path(d) / "report.html")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        names: dict = {}
        exec(compile(block, "README.md", "exec"), names)
        df = names["df"]
        assert len(df) == 2 and set(df.status) == {"done"}
    assert (sweep / "results.parquet").is_file()
    assert not (tmp_path / "results.parquet").exists()
