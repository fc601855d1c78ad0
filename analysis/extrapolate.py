"""How far can a fitted law be trusted? Hold out the largest runs, fit the rest, and
measure the error predicting the held-out ones (Alabdulmohsin et al. 2022 judge laws this
way: a law that only interpolates says nothing about the next, bigger run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.fit import FitResult, _column, _columns, _require, fit_law
from analysis.laws import Law, get_law
from analysis.select import direction, frontier
from contract.errors import ConfigError


@dataclass
class Extrapolation:
    """A law fitted without the largest runs, judged on them.

    ``held`` has one row per held-out point: its x, the observed y (under y's own name),
    ``pred``, the bootstrap interval ``lo``/``hi``, ``pred_minus_y`` and ``inside`` (y
    within the interval). ``decades`` is how far beyond the fitted data the held-out
    points reach (log10 of their largest size over the largest fitted); ``mae``, ``bias``
    and ``max_error`` are in y's units; ``coverage`` is the share of held-out points
    inside the interval (NaN without bootstrap intervals); ``verdict`` says in one line
    how far the fit can be trusted. ``scored_on`` is ``"frontier"`` when both the fit
    and the score used only the best run per bin of x (``frontier_bins``), else
    ``"all runs"``.
    """

    fit: FitResult
    held: pd.DataFrame
    decades: float
    mae: float
    bias: float
    max_error: float
    coverage: float
    verdict: str
    scored_on: str = "all runs"

    def to_row(self) -> dict:
        return {"n_fit": self.fit.n, "n_held": len(self.held), "decades": self.decades,
                "mae": self.mae, "bias": self.bias, "max_error": self.max_error,
                "coverage": self.coverage, "rmse_fit": self.fit.rmse,
                "scored_on": self.scored_on, "trust": self.verdict}

    def _repr_html_(self) -> str:
        return (f"<p><b>{self.fit.law.name}</b> extrapolated {self.decades:.2g} decades: "
                f"{self.verdict}</p>" + self.held.to_html(index=False, float_format="%.4g"))


def verdict(mae: float, rmse_fit: float, decades: float, coverage: float,
            units: str = "") -> str:
    """One plain line on how far a fit can be trusted, from its held-out error.

    Trusted: the held-out error is within twice the fit's own scatter (the runs' noise)
    and, when there are intervals, at least half the held-out points fall inside the
    band; rough: within five times (or within twice but mostly outside the band: the
    band is too narrow); otherwise not to be extrapolated.
    """
    if not math.isfinite(mae):
        return "cannot tell: the fit without the largest runs failed"
    span = f"{decades:.1f} decades" if decades >= 0.05 else "the fitted range"
    noise = max(rmse_fit, 1e-12) if math.isfinite(rmse_fit) else 1e-12
    ratio = mae / noise
    band = (f", {coverage:.0%} inside the band" if math.isfinite(coverage)
            else ", no band to check")
    off = f"off by {mae:.3g}{units} ({ratio:.1f}x the fit's scatter{band})"
    covered = not math.isfinite(coverage) or coverage >= 0.5
    if ratio <= 2 and covered:
        return f"trusted to {span} beyond the data: {off}"
    if ratio <= 2:
        return f"rough at {span} beyond the data (the band is too narrow): {off}"
    if ratio <= 5:
        return f"rough at {span} beyond the data: {off}"
    return f"do not extrapolate {span}: {off}"


def _size(df: pd.DataFrame, x: tuple[str, ...], holdout_on: str | None) -> pd.Series:
    if holdout_on:
        return pd.to_numeric(_column(df, holdout_on), errors="coerce")
    size = pd.Series(1.0, index=df.index)
    for column in x:  # a joint law's points are ordered by N x D, a compute proxy
        size = size * pd.to_numeric(_column(df, column), errors="coerce")
    return size


def extrapolate(df: pd.DataFrame, x: str | Sequence[str] = "dataset_images", y: str = "top1",
                law: str | Law = "loglinear", holdout: int | float = 1,
                holdout_on: str | None = None, n_boot: int = 200, seed: int = 0,
                frontier_bins: int | None = None, best: str | None = None,
                units: str | None = None, **fit_options) -> Extrapolation:
    """Fit ``law`` without the largest runs of ``df`` and predict them.

    The runs held out are those at the ``holdout`` largest distinct sizes (an int), or at
    that fraction of the distinct sizes (a float below 1, at least one size). Size is
    ``holdout_on`` when given, else ``x`` (for a joint law, the product of its columns).
    Filter ``df`` to done runs of one group first, as for `fit_law`.

    With ``frontier_bins`` the frontier (best run per log-bin of x, in the direction of
    the law or ``best``) is taken over the whole table first; the law is fitted to the
    frontier runs below the cut and scored on the frontier runs above it, never on
    dominated runs (``scored_on="frontier"`` in the result).
    """
    law = get_law(law)
    xcols = _columns(x)
    _require(df, (*xcols, y))
    data = df[_column(df, y, units).notna().to_numpy()]
    scored_on = "all runs"
    if frontier_bins:
        data = frontier(data, x=xcols[0], y=y, bins=frontier_bins,
                        best=direction(best, law), units=units)
        scored_on = "frontier"
    size = _size(data, xcols, holdout_on).to_numpy(float)
    levels = np.sort(np.unique(size[np.isfinite(size)]))
    k = (max(1, int(round(holdout * len(levels)))) if 0 < holdout < 1 else int(holdout))
    if k < 1 or len(levels) <= k:
        raise ConfigError(f"holdout={holdout} leaves no runs to fit ({len(levels)} sizes)")
    cut = levels[-k]
    keep, held = data[size < cut], data[size >= cut]
    result = fit_law(keep, x=x, y=y, law=law, n_boot=n_boot, seed=seed, units=units,
                     **fit_options)
    hx = np.column_stack([pd.to_numeric(_column(held, c), errors="coerce") for c in xcols])
    hx = hx[:, 0] if len(xcols) == 1 else hx
    hy = pd.to_numeric(_column(held, y, units), errors="coerce").to_numpy(float)
    pred = result.predict(hx) if result.success else np.full(len(hy), np.nan)
    lo, hi = result.band(hx) if result.success else (pred, pred)
    table = pd.DataFrame({c: pd.to_numeric(_column(held, c), errors="coerce").to_numpy()
                          for c in xcols})
    observed = y if y not in (*xcols, "pred", "lo", "hi", "pred_minus_y", "inside") \
        else f"{y} (observed)"
    table[observed] = hy
    table["pred"], table["lo"], table["hi"] = pred, lo, hi
    table["pred_minus_y"] = pred - hy
    banded = np.isfinite(lo) & np.isfinite(hi)
    table["inside"] = (hy >= lo) & (hy <= hi)
    decades = float(np.log10(size[size >= cut].max() / size[size < cut].max()))
    err = table["pred_minus_y"].to_numpy(float)
    mae = float(np.mean(np.abs(err))) if len(err) else math.nan
    coverage = (float(table["inside"][banded].mean()) if banded.any() else math.nan)
    units_text = " points" if y in ("top1", "top5") else ""
    return Extrapolation(result, table, decades, mae, float(np.mean(err)),
                         float(np.max(np.abs(err))), coverage,
                         verdict(mae, result.rmse, decades, coverage, units_text), scored_on)


def extrapolation_groups(df: pd.DataFrame,
                         by: Sequence[str] = ("width", "vocab", "target", "protocol"),
                         x: str | Sequence[str] = "dataset_images", y: str = "top1",
                         law: str | Law = "loglinear", holdout: int | float = 1,
                         done_only: bool = True, **options) -> pd.DataFrame:
    """`extrapolate` per group of ``by``: one row per group with ``law``, ``n_fit``,
    ``n_held``, ``decades``, ``mae``, ``bias``, ``max_error``, ``coverage``,
    ``rmse_fit``, ``scored_on`` and ``trust`` (the verdict), or why the group could not
    be judged."""
    law = get_law(law)
    by = list(by)
    _require(df, by)
    data = df[df["status"] == "done"] if done_only and "status" in df.columns else df
    rows = []
    groups = data.groupby(by, dropna=False, sort=True) if by else [((), data)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key), law=law.name)
        try:
            row.update(extrapolate(group, x=x, y=y, law=law, holdout=holdout,
                                   **options).to_row())
        except ValueError as e:
            row["trust"] = f"cannot tell: {e}"
        rows.append(row)
    columns = [*by, "law", "n_fit", "n_held", "decades", "mae", "bias", "max_error",
               "coverage", "rmse_fit", "scored_on", "trust"]
    return pd.DataFrame(rows, columns=columns)
