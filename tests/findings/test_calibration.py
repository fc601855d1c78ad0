"""The report's calibration table: hit and false-alarm rates of each finding's rule, read
from the breaker pairs' records (analysis/data/calibration.csv), and one line, not a
crash, when the file is missing or malformed."""

from __future__ import annotations

import json

import pytest

from analysis import calibration as C
from analysis.report import TEMPLATE


def _rows(world: int, held: dict[str, bool], finding: int = 1) -> list[dict]:
    return [{"finding": finding, "arm": arm, "world": world,
             "verdict": "holds" if h else "does not hold", "held": int(h), "effect": 1.0,
             "lo": 0.5, "hi": 1.5, "units": 3,
             "mechanism_off": "random tags" if arm == "breaker" else "", "scale_limited": "",
             "scale": "tiny", "source": "tests/x.py", "date": f"2026-12-0{world + 1}"}
            for arm, h in held.items()]


def test_rates_count_controls_and_breakers_that_held(tmp_path):
    path = tmp_path / "calibration.csv"
    C.write_calibration(_rows(0, {"control": True, "breaker": False})
                        + _rows(1, {"control": True, "breaker": True})
                        + _rows(2, {"control": False, "breaker": False}), path)
    table = C.calibration_table(C.read_calibration(path))
    row = table.iloc[0]
    assert row["hit rate (controls held / run)"] == "2/3"
    assert row["false alarms (breakers held / run)"] == "1/3"
    assert row["pairs"] == 3 and row["worlds"] == "0-2"
    text = C.calibration_markdown(path)
    assert "rests on 3 pairs" in text and "| 2/3 | 1/3 |" in text and "random tags" in text
    assert "2026-12-01 to 2026-12-03" in text


def test_a_rerun_replaces_its_rows(tmp_path):
    path = tmp_path / "calibration.csv"
    C.write_calibration(_rows(0, {"control": False, "breaker": False}), path)
    C.write_calibration(_rows(0, {"control": True, "breaker": False}), path)
    table = C.read_calibration(path)
    assert len(table) == 2 and table.loc[table.arm == "control", "held"].tolist() == [1]


def test_a_missing_file_gives_one_line(tmp_path):
    text = C.calibration_markdown(tmp_path / "none.csv")
    assert text.startswith("_Calibration not shown:") and "none.csv" in text
    assert "\n" not in text and "no calibration file" in text


@pytest.mark.parametrize("content, words", [
    ("finding,arm\n1,control\n", "column(s) ['world', 'held'] missing"),
    ("finding,arm,world,held\n1,contrl,0,1\n", "arm 'contrl' is invalid"),
    ("", "not a readable CSV"),
])
def test_a_malformed_file_gives_one_line(tmp_path, content, words):
    path = tmp_path / "calibration.csv"
    path.write_text(content)
    with pytest.raises(C.CalibrationError, match=r"calibration\.csv"):
        C.read_calibration(path)
    text = C.calibration_markdown(path)
    assert words in text and "\n" not in text


def _template_cell() -> str:
    nb = json.loads(TEMPLATE.read_text())
    cells = [c for c in nb["cells"] if c.get("id") == "calibration-code"]
    assert len(cells) == 1, "the report template has no calibration cell"
    return "".join(cells[0]["source"])


def _run_cell(calibration) -> str:
    shown = []
    namespace = {"calibration": None if calibration is None else str(calibration),
                 "Markdown": lambda text: shown.append(text) or text}
    exec(compile(_template_cell(), "calibration-code", "exec"), namespace)
    assert len(shown) == 1
    return shown[0]


def test_the_report_template_shows_the_table_from_the_file(tmp_path):
    path = tmp_path / "calibration.csv"
    C.write_calibration(_rows(0, {"control": True, "breaker": False}), path)
    assert "| 1/1 | 0/1 |" in _run_cell(path)
    assert _run_cell(tmp_path / "gone.csv").startswith("_Calibration not shown:")


def test_the_shipped_file_pairs_every_finding_on_worlds_it_was_not_tuned_on():
    """analysis/data/calibration.csv (what `scaling report` shows by default) is the breaker
    test's own output: both arms of all six findings on each world, none on world 0 (the
    world the pairs were designed on), and the report renders it as a table."""
    table = C.read_calibration(C.CALIBRATION)
    assert set(table["source"]) == {"tests/findings/test_breakers.py"}
    worlds = sorted(set(table["world"].astype(int)))
    assert worlds and 0 not in worlds
    for world in worlds:
        rows = table[table["world"].astype(int) == world]
        assert sorted(zip(rows["finding"].astype(int), rows["arm"])) == sorted(
            (n, arm) for n in range(1, 7) for arm in C.ARMS), world
    text = C.calibration_markdown()
    assert "Calibration not shown" not in text and text.count("\n|") >= 8
