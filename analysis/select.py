"""Choosing which rows a fit sees: derived y columns, the compute frontier, the main grid.

Kept apart from the fitting so the notebook, plots and planner select rows the same way.
Nothing here guesses from a column's *name*: which run is best comes from the law
(`Law.decreasing`) or an explicit ``best=``, and whether accuracies are percentages or
fractions from their values or an explicit ``units=``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from contract.errors import ConfigError

UNITS = ("percent", "fraction")

DERIVED = {"error": "top1", "top5_error": "top5"}
"""y columns computed when the table lacks them: top-1 / top-5 error as a fraction
(``1 - top1`` for accuracies in [0, 1], ``1 - top1 / 100`` for percentages; see
`accuracy_units`), the quantity power laws are written for."""


class ColumnError(ConfigError, KeyError):
    """A column the caller named is not in the table (one line: the name, what the table
    has, and the fix)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def accuracy_units(values, units: str | None = None, name: str = "top1") -> str:
    """``"percent"`` or ``"fraction"``: ``units`` when given, else from the values
    (every finite value within [0, 1]: a fraction; any above 1: percent).

    A table of percentages whose accuracies are all at most 1% reads as fractions; pass
    ``units="percent"`` for it.
    """
    if units is not None:
        if units not in UNITS:
            raise ConfigError(f"units={units!r} is invalid: use 'percent' or 'fraction'")
        return units
    v = pd.to_numeric(pd.Series(np.ravel(values)), errors="coerce").dropna()
    if len(v) and (v.min() < 0 or v.max() > 100):
        raise ConfigError(f"column {name!r} holds values in [{v.min():.4g}, {v.max():.4g}]: "
                          "not an accuracy in percent or as a fraction; pass your own y=")
    return "fraction" if not len(v) or v.max() <= 1 else "percent"


def column(df: pd.DataFrame, name: str, units: str | None = None) -> pd.Series:
    """``df[name]``, or a `DERIVED` column computed from ``df`` (``units`` of its source
    accuracy, see `accuracy_units`)."""
    if name in df.columns:
        return df[name]
    if name in DERIVED:
        source = DERIVED[name]
        if source not in df.columns:
            raise ColumnError(
                f"y={name!r} is derived as 1 - {source}, but the table has no {source!r} "
                f"column (have {list(df.columns)}): pass your own error column as y=")
        acc = pd.to_numeric(df[source], errors="coerce")
        scale = 100.0 if accuracy_units(acc, units, source) == "percent" else 1.0
        return 1 - acc / scale
    raise ColumnError(f"column {name!r} not in the DataFrame; have {list(df.columns)}")


def has_column(df: pd.DataFrame, name: str) -> bool:
    """Whether `column` can produce ``name`` from ``df``."""
    return name in df.columns or (name in DERIVED and DERIVED[name] in df.columns)


def direction(best: str | None = None, law=None) -> str:
    """``"min"`` or ``"max"``: ``best`` when given, else from ``law.decreasing`` (a law of
    an error or loss keeps the smallest y). Without either there is no safe default."""
    if best is None and law is not None:
        from analysis.laws import get_law

        best = "min" if get_law(law).decreasing else "max"
    if best not in ("min", "max"):
        raise ConfigError(f"best={best!r}: say which run is best per bin, best='min' "
                          "(errors, losses) or best='max' (accuracies), or pass law=")
    return best


def frontier(df: pd.DataFrame, x: str = "pretrain_flops", y: str = "top1", bins: int = 10,
             best: str | None = None, law=None, units: str | None = None) -> pd.DataFrame:
    """The best run per bin of ``x``: bins equal in log10 x between its smallest and
    largest value, ``bins`` of them; empty bins are skipped.

    ``best`` is ``"max"`` or ``"min"``, or taken from ``law`` (see `direction`); one of
    the two is required. Returns the chosen rows of ``df`` (one per bin, also when the
    index has duplicate labels), sorted by ``x``.
    """
    if bins < 1:
        raise ConfigError(f"bins={bins} must be >= 1")
    best = direction(best, law)
    xs = pd.to_numeric(column(df, x), errors="coerce").to_numpy(float)
    ys = pd.to_numeric(column(df, y, units), errors="coerce").to_numpy(float)
    ok = np.flatnonzero(np.isfinite(xs) & np.isfinite(ys) & (xs > 0))
    if not len(ok):
        return df.iloc[:0]
    logx = np.log10(xs[ok])
    edges = np.linspace(logx.min(), logx.max(), bins + 1)
    which = np.clip(np.searchsorted(edges, logx, side="right") - 1, 0, bins - 1)
    score = ys[ok] if best == "min" else -ys[ok]
    order = np.lexsort((score, which))  # by bin, best first (stable: first row on ties)
    first = order[np.r_[True, which[order][1:] != which[order][:-1]]]
    picked = ok[first]
    return df.iloc[picked[np.argsort(xs[picked], kind="stable")]]


def main_grid(df: pd.DataFrame, axes: Sequence[str] = ("resample", "label_noise")) -> pd.DataFrame:
    """The rows of the sweep's main grid: each ablation axis in ``axes`` at its most
    common value among done rows (e.g. natural sampling, no label noise).

    Ablation grids (``grids:`` in the sweep file) add runs at a few points only; fitting a
    scaling law through them would mix their effect into the law.
    """
    done = df[df["status"] == "done"] if "status" in df.columns else df
    keep = np.ones(len(df), bool)  # positional: a duplicated index must not matter
    for axis in axes:
        if axis in df.columns and done[axis].notna().any():
            common = done[axis].value_counts().idxmax()
            keep &= (df[axis].eq(common).fillna(False).astype(bool) | df[axis].isna()).to_numpy()
    return df[keep]
