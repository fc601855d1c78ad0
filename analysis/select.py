"""Choosing which rows a fit sees: derived y columns, the compute frontier, the main grid.

Kept apart from the fitting so the notebook, plots and planner select rows the same way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

DERIVED = {
    "error": lambda df: 1 - pd.to_numeric(df["top1"], errors="coerce") / 100,
    "top5_error": lambda df: 1 - pd.to_numeric(df["top5"], errors="coerce") / 100,
}
"""y columns computed when the table lacks them: top-1/top-5 error as a fraction (top1 is
in percent), the quantity power laws are written for."""


def column(df: pd.DataFrame, name: str) -> pd.Series:
    """``df[name]``, or a `DERIVED` column computed from ``df``."""
    if name in df.columns:
        return df[name]
    if name in DERIVED:
        return DERIVED[name](df)
    raise KeyError(f"column {name!r} not in the DataFrame; have {list(df.columns)}")


def lower_is_better(y: str) -> bool:
    """Whether ``y`` names an error or a loss (so a frontier keeps its minimum)."""
    return "error" in y or "loss" in y


def frontier(df: pd.DataFrame, x: str = "pretrain_flops", y: str = "top1", bins: int = 10,
             best: str | None = None) -> pd.DataFrame:
    """The best run per bin of ``x``: bins equal in log10 x between its smallest and
    largest value, ``bins`` of them; empty bins are skipped.

    ``best`` is ``"max"`` or ``"min"``; by default ``min`` for errors and losses (see
    `lower_is_better`), else ``max``. Returns the chosen rows of ``df``, sorted by ``x``.
    """
    if bins < 1:
        raise ValueError(f"bins={bins} must be >= 1")
    best = best or ("min" if lower_is_better(y) else "max")
    if best not in ("min", "max"):
        raise ValueError(f"best={best!r} is invalid: use 'min' or 'max'")
    xs = pd.to_numeric(column(df, x), errors="coerce")
    ys = pd.to_numeric(column(df, y), errors="coerce")
    ok = xs.notna() & ys.notna() & (xs > 0)
    if not ok.any():
        return df.iloc[:0]
    logx = np.log10(xs[ok].astype(float))
    edges = np.linspace(logx.min(), logx.max(), bins + 1)
    which = np.clip(np.searchsorted(edges, logx, side="right") - 1, 0, bins - 1)
    picked = ys[ok].groupby(which).idxmax() if best == "max" else ys[ok].groupby(which).idxmin()
    return df.loc[picked.to_numpy()].sort_values(x) if x in df.columns else df.loc[picked]


def main_grid(df: pd.DataFrame, axes: Sequence[str] = ("resample", "label_noise")) -> pd.DataFrame:
    """The rows of the sweep's main grid: each ablation axis in ``axes`` at its most
    common value among done rows (e.g. natural sampling, no label noise).

    Ablation grids (``grids:`` in the sweep file) add runs at a few points only; fitting a
    scaling law through them would mix their effect into the law.
    """
    done = df[df["status"] == "done"] if "status" in df.columns else df
    keep = pd.Series(True, index=df.index)
    for axis in axes:
        if axis in df.columns and done[axis].notna().any():
            common = done[axis].value_counts().idxmax()
            keep &= df[axis].eq(common).fillna(False).astype(bool) | df[axis].isna()
    return df[keep]
