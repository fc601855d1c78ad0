"""docs/fitting.md's worked example runs as written, on the public table shipped with the
package, and the numbers its prose quotes are the ones it computes."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "fitting.md"


def _example() -> str:
    text = PAGE.read_text()
    section = text.split("\n## Worked example\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the worked example lost its python block"
    return "\n".join(blocks)


def test_fitting_page_example_runs_and_its_numbers_hold(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the example reads analysis/data/... relative to the clone
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the example's fits are clean: no FitWarning
        exec(compile(_example(), str(PAGE), "exec"), namespace)  # noqa: S102 (our own docs)
    miss, fits, fig = namespace["miss"], namespace["fits"], namespace["fig"]
    panels = [ax for ax in fig.axes if ax.collections]
    assert sorted(ax.get_title() for ax in panels) == ["bird_10", "bird_5"]  # not 164
    for (law, task), quoted in {("power", "bird_5"): 0.027, ("power", "bird_10"): 0.024,
                                ("saturating", "bird_5"): 0.013,
                                ("saturating", "bird_10"): 0.015}.items():
        assert miss[law, task] == pytest.approx(quoted, abs=0.0015), (law, task)
    floors = dict(zip(fits["saturating"].Task, fits["saturating"].c))
    assert floors["bird_5"] == pytest.approx(0.34, abs=0.006)
    assert floors["bird_10"] == pytest.approx(0.31, abs=0.006)
    assert "Task" in capsys.readouterr().out
