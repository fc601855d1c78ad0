"""`collect` takes the Path `expand_sweep` returns, a str or a list of them; a str
is one folder, never its letters; and the README's notebook flow runs as written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from contract.errors import ConfigError
from scaling import collect
from tests.helpers.cli_checks import fake_sweep


def test_collect_accepts_a_path_a_str_and_a_list(tmp_path):
    sweep = fake_sweep(tmp_path)
    by_path = collect(sweep, write=False)
    by_str = collect(str(sweep), write=False)
    both = collect([sweep, str(sweep)], write=False)
    assert len(by_path) == 2 and set(by_path.run_id) == {p.name for p in (sweep / "runs").iterdir()}
    pd.testing.assert_frame_equal(by_path, by_str)
    pd.testing.assert_frame_equal(both, by_path)  # one folder named twice is read once


def test_collect_of_a_str_writes_only_into_that_sweep(tmp_path):
    sweep = fake_sweep(tmp_path)
    collect(str(sweep))
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("results.parquet"))
    assert written == [Path("fake/results.parquet")]


def test_collect_refuses_a_folder_that_is_not_a_sweep_and_writes_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("not a sweep")
    with pytest.raises(ConfigError, match="is not a sweep folder"):
        collect(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
