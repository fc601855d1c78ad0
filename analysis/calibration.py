"""How often the findings' verdicts are right: hit and false-alarm rates from breaker runs.

Each finding has a control/breaker pair (tests/findings/test_breakers.py): the control is
a small sweep on a world where the finding's mechanism is on (its verdict should hold),
the breaker the same sweep with that mechanism switched off in the generator or the
design (its verdict should not hold). Run on several worlds, the pairs measure the
instrument itself:

- the HIT RATE of a finding: controls that held / controls run (sensitivity);
- its FALSE-ALARM RATE: breakers that held / breakers run (1 - specificity).

The runs' verdicts are kept in ``analysis/data/calibration.csv`` (`CALIBRATION`), one row
per (finding, arm, world), with the test that produced them, the date and the scale; the
report's Findings section shows `calibration_markdown` (what each rate rests on, in
pairs and worlds), or one line saying the file is missing. Written by running the breaker
test with ``FINDINGS_CALIBRATION_OUT`` set (docs/report-and-findings.md, "Calibration").
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from contract.atomic import atomic_write_text

CALIBRATION = Path(__file__).parent / "data" / "calibration.csv"
COLUMNS = ["finding", "arm", "world", "verdict", "held", "effect", "lo", "hi", "units",
           "mechanism_off", "scale_limited", "scale", "source", "date"]
"""``arm`` is ``control`` or ``breaker``; ``held`` is 1 when the verdict was "holds";
``units`` the seeds (or replicates) the verdict rests on; ``mechanism_off`` what the
breaker switched off; ``scale_limited`` why the tiny scale cannot show the control (empty
when it can); ``scale`` the runs' size; ``source`` the test that ran them."""
ARMS = ("control", "breaker")


class CalibrationError(ValueError):
    """The calibration file is missing or malformed (the message says which and how to fix)."""


def calibration_rows(pairs: dict, world: int, mechanism_off: dict, scale_limited: dict,
                     source: str, date: str, scale: str) -> list[dict]:
    """One row per (finding, arm) of ``pairs`` (finding -> (control, breaker) `Findings`)
    on ``world``."""
    rows = []
    for number, results in sorted(pairs.items()):
        for arm, result in zip(ARMS, results):
            finding = result[number]
            lo, hi = finding.interval

            def num(v):
                return round(float(v), 4) if v is not None and math.isfinite(v) else None
            tested = [p for p in finding.parts if p.rule]
            rows.append({
                "finding": number, "arm": arm, "world": int(world),
                "verdict": finding.verdict, "held": int(finding.verdict == "holds"),
                "effect": num(finding.effect), "lo": num(lo), "hi": num(hi),
                "units": min((p.seeds for p in tested), default=0),
                "mechanism_off": mechanism_off.get(number, "") if arm == "breaker" else "",
                "scale_limited": scale_limited.get(number, ""), "scale": scale,
                "source": source, "date": date})
    return rows


def write_calibration(rows: list[dict], path: str | os.PathLike = CALIBRATION) -> Path:
    """Merge ``rows`` into the CSV at ``path``: a row replaces an earlier one of the same
    (finding, arm, world, source); the file is sorted and written atomically."""
    path = Path(path)
    new = pd.DataFrame(rows, columns=COLUMNS)
    if path.is_file():
        old = read_calibration(path)
        key = ["finding", "arm", "world", "source"]
        seen = set(map(tuple, new[key].astype(str).to_numpy()))
        old = old[[tuple(r) not in seen for r in old[key].astype(str).to_numpy()]]
        new = pd.concat([old, new], ignore_index=True)
    new = new.sort_values(["finding", "world", "arm"], kind="stable")
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, new.to_csv(index=False))


def read_calibration(path: str | os.PathLike = CALIBRATION) -> pd.DataFrame:
    """The calibration rows; `CalibrationError` (one line) when the file is missing or
    lacks a column."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"{path}: no calibration file; write it by running the "
                               "breaker pairs (docs/report-and-findings.md, 'Calibration')")
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{path}: not a readable CSV ({str(e).splitlines()[0]}); "
                               "rewrite it from the breaker pairs") from None
    missing = [c for c in ("finding", "arm", "world", "held") if c not in table.columns]
    if missing:
        raise CalibrationError(f"{path}: column(s) {missing} missing; have "
                               f"{list(table.columns)}: rewrite it from the breaker pairs")
    bad = sorted(set(table["arm"].astype(str)) - set(ARMS))
    if bad:
        raise CalibrationError(f"{path}: arm {bad[0]!r} is invalid: use control or breaker")
    return table


def calibration_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per finding: hit rate (controls held / run), false-alarm rate (breakers held / run),
    the worlds, and what the breaker switched off."""
    from analysis.findings import TITLES, world_list

    out = []
    for number in sorted(set(int(n) for n in table["finding"])):
        rows = table[table["finding"].astype(int) == number]
        control = rows[rows["arm"] == "control"]
        breaker = rows[rows["arm"] == "breaker"]

        def rate(part):
            return (f"{int(part['held'].sum())}/{len(part)}" if len(part) else "not run")
        off = breaker.get("mechanism_off", pd.Series(dtype=str)).dropna()
        limited = rows.get("scale_limited", pd.Series(dtype=str)).dropna()
        out.append({
            "finding": f"{number}. {TITLES.get(number, '')}".rstrip(". "),
            "hit rate (controls held / run)": rate(control),
            "false alarms (breakers held / run)": rate(breaker),
            "pairs": min(len(control), len(breaker)),
            "worlds": world_list(sorted(set(int(w) for w in rows["world"]))),
            "mechanism switched off": off.iloc[0] if len(off) else "",
            "note": limited.iloc[0] if len(limited) else ""})
    return pd.DataFrame(out)


def calibration_markdown(path: str | os.PathLike | None = None) -> str:
    """The report's calibration paragraph and table (Markdown), or one line saying why
    there is none (a missing or malformed file never stops the report)."""
    path = Path(path) if path is not None else CALIBRATION
    try:
        table = read_calibration(path)
    except CalibrationError as e:
        return f"_Calibration not shown: {e}._"
    if not len(table):
        return f"_Calibration not shown: {path} has no rows._"
    summary = calibration_table(table)
    pairs = summary["pairs"]
    sources = ", ".join(sorted(set(table["source"].dropna().astype(str)))) \
        if "source" in table else "unknown"
    dates = sorted(set(table["date"].dropna().astype(str))) if "date" in table else []
    scale = sorted(set(table["scale"].dropna().astype(str))) if "scale" in table else []
    head = (f"**Calibration of the instrument** (from `{path.name}`: {sources}"
            + (f", {dates[0]}" + (f" to {dates[-1]}" if len(dates) > 1 else "") if dates
               else "") + (f"; {'; '.join(scale)}" if scale else "") + "). "
            f"Each finding's rule was run on control/breaker pairs: the control with the "
            f"finding's mechanism on, the breaker with it switched off. The hit rate is the "
            f"share of controls whose verdict held, the false-alarm rate the share of "
            f"breakers whose verdict held. Each rate rests on {_count(pairs)}, so it is a "
            f"coarse check of the rules, not a precise rate; the pairs ran at a smaller "
            f"scale than a study.")
    return head + "\n\n" + _markdown_table(summary)


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, table.columns)) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _count(pairs: pd.Series) -> str:
    lo, hi = int(pairs.min()), int(pairs.max())
    return f"{lo} pair{'s' if lo != 1 else ''}" if lo == hi else f"{lo} to {hi} pairs"
