"""What each resampling scheme shows the model, from the runs' sampling.json figures
(`sampling_*` columns of `analysis.collect`; data/sampling_stats.py defines them): the
report's resampling ablation shows the table and says in words what it measures.

The figures are exact expectations over each run's stream, so runs that differ only in
their seed have the same ones; a table row is the mean over its runs (runs on several
worlds differ a little). A run without sampling.json contributes NaN (write the file with
`scaling data sampling SWEEP_DIR`).
"""

from __future__ import annotations

import math

import pandas as pd

FIGURES = {"sampling_distinct": "distinct", "sampling_repeats": "repeats",
           "sampling_tail_images": "tail_images", "sampling_tail_share": "tail_share",
           "sampling_tail_distinct": "tail_distinct", "sampling_tail_repeats": "tail_repeats"}
"""results column -> the table's column."""
POINT = ("dataset_images", "images_seen")
"""What else sets a scheme's figures: the set and the stream length."""


def sampling_table(df: pd.DataFrame, axis: str = "resample") -> pd.DataFrame:
    """One row per pretraining point (`POINT`) x scheme, at the points where the sweep
    varies ``axis`` (as the ablation figure picks them: other ablation axes at their most
    common value): ``runs`` (with the file: ``with_figures``) and the means of `FIGURES`.
    Empty when no point has two schemes."""
    from analysis.plots import _common, ablation_axes, where_varied

    columns = ["sweep", "run_id", axis, *POINT]
    if not set(columns) <= set(df.columns) or not len(df):
        return pd.DataFrame()
    runs = df.drop_duplicates(["sweep", "run_id"])
    runs = runs[runs[axis].notna()]
    others = [a for a in ablation_axes(runs) if a != axis]
    runs = where_varied(_common(runs, others), axis)
    if not len(runs):
        return pd.DataFrame()
    figures = runs.reindex(columns=[*POINT, axis, *FIGURES]).copy()
    for column in FIGURES:
        figures[column] = pd.to_numeric(figures[column], errors="coerce").astype(float)
    grouped = figures.groupby([*POINT, axis], dropna=False)
    table = grouped[list(FIGURES)].mean().rename(columns=FIGURES)
    table.insert(0, "with_figures", grouped["sampling_distinct"].count())
    table.insert(0, "runs", grouped.size())
    return table.reset_index()


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _x(value: float) -> str:
    return f"{value:.1f}"


def sampling_text(table: pd.DataFrame, baseline: str = "natural",
                  axis: str = "resample") -> str:
    """What the table shows, in words computed from its numbers: per point and scheme,
    the distinct images against ``baseline``'s, the repeats, the tail's share of draws and
    how many times more the tail is drawn, and whether the scheme gains its tail draws by
    showing more distinct images or by repeating fewer."""
    if table is None or not len(table):
        return "_This sweep does not vary resampling at any pretraining point._"
    lines = []
    for point, rows in table.groupby(list(POINT), dropna=False):
        rows = rows.set_index(axis)
        if baseline not in rows.index:
            continue
        base = rows.loc[baseline]
        where = f"At {_n(point[0])} images ({_n(point[1])} seen)"
        for scheme, row in rows.drop(index=baseline).iterrows():
            if any(math.isnan(v) for v in (row["distinct"], base["distinct"],
                                           row["tail_share"], base["tail_share"])):
                lines.append(f"- {where}, {scheme} vs {baseline}: no sampling figures "
                             "(run `scaling data sampling` on the sweep).")
                continue
            fewer = row["distinct"] < base["distinct"]
            ratio = row["tail_share"] / base["tail_share"] if base["tail_share"] else math.inf
            how = ("so it gains its tail draws by repeating fewer images, not by showing "
                   "more distinct ones") if fewer else \
                "so it shows more distinct images as well as more tail draws"
            lines.append(
                f"- {where}, **{scheme}** shows {_n(row['distinct'])} distinct images "
                f"against {baseline}'s {_n(base['distinct'])} "
                f"({row['distinct'] / base['distinct']:.2f}x), each drawn "
                f"{_x(row['repeats'])} times on average ({baseline}: {_x(base['repeats'])}); "
                f"it gives the tail ({_n(row['tail_images'])} images) "
                f"{100 * row['tail_share']:.1f}% of its draws against "
                f"{100 * base['tail_share']:.1f}%, {_x(ratio)}x more, showing "
                f"{_n(row['tail_distinct'])} of them {_x(row['tail_repeats'])} times each "
                f"({baseline}: {_n(base['tail_distinct'])}, {_x(base['tail_repeats'])} "
                f"times): {how}.")
    if not lines:
        return f"_No pretraining point has both {baseline} and another scheme._"
    return "\n".join(lines)
