"""Figures from collected results: the paper's Figure 2 in miniature, and run status.

Functions return a `matplotlib.figure.Figure` built without pyplot, so they leave no
global figure state behind (safe in loops, scripts and tests); in a notebook, display the
returned figure or save it with ``fig.savefig``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.fit import fit_groups, predict_row

STATUS_COLORS = {"done": "#4c9a2a", "running": "#3b75af", "pending": "#9e9e9e",
                 "preempted": "#e39c37", "cancelled": "#7f6a93", "failed": "#c0392b",
                 "corrupt": "#8c2d19"}


def _levels(values: pd.Series) -> list:
    """Distinct non-missing values in reading order: numbers ascending (also numeric text
    such as vocab '1000'), then other text alphabetically ('all', 'matched:fine')."""
    def key(v):
        try:
            return (0, float(v), "")
        except (TypeError, ValueError):
            return (1, 0.0, str(v))
    return sorted(pd.unique(values.dropna()), key=key)


def _select(df: pd.DataFrame, column: str | None, level) -> pd.DataFrame:
    return df if column is None else df[df[column] == level]


def _done(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    data = df[df["status"] == "done"] if "status" in df.columns else df
    return data[data[x].notna() & data[y].notna()]


def _panels(data: pd.DataFrame, col: str | None) -> tuple[list, list]:
    """Row keys (target, protocol) and column levels of the facet grid."""
    keys = [c for c in ("target", "protocol") if c in data.columns]
    rows = list(data[keys].drop_duplicates().sort_values(keys)
                .itertuples(index=False, name=None)) if keys else []
    cols = _levels(data[col]) if col else []
    return rows or [()], cols or [None]


def _match_fit(fits: pd.DataFrame, conditions: dict) -> pd.Series | None:
    mask = pd.Series(True, index=fits.index)
    for column, value in conditions.items():
        if column in fits.columns:
            mask &= fits[column].astype(str) == str(value)
    match = fits[mask & fits["message"].fillna("").eq("")] if "message" in fits else fits[mask]
    return match.iloc[0] if len(match) else None


def plot_scaling(df: pd.DataFrame, fits: pd.DataFrame | bool | None = None,
                 x: str = "dataset_images", y: str = "top1", hue: str | None = "width",
                 col: str | None = "vocab", target: str | Sequence[str] | None = None,
                 protocol: str | None = None, floor: bool = True,
                 height: float = 3.4) -> Figure:
    """Transfer ``y`` against pretraining ``x`` (log axis) for the done rows of ``df``.

    One panel per ``col`` level (vocabulary) and per target x protocol (one row each; pass
    ``target`` to keep some). In each panel one colour per ``hue`` level (width): the mean
    over seeds with a +-1 sd error bar when there are several seeds, the fitted law as a
    line, and the random-trunk floor (mean ``floor_<y>``) as a dashed line.

    ``fits`` is a `fit_groups` table to draw (matched on hue, col, target and protocol);
    None fits the log-linear law here (without intervals); False draws no lines.
    """
    data = _done(df, x, y)
    if target is not None:
        data = data[data["target"].isin([target] if isinstance(target, str) else target)]
    if protocol is not None:
        data = data[data["protocol"] == protocol]
    if fits is None and len(data):
        by = [c for c in (hue, col, "target", "protocol") if c and c in data.columns]
        fits = fit_groups(data, by=by, x=x, y=y, n_boot=0)
    rows, cols = _panels(data, col)
    hues = _levels(data[hue]) if hue and len(data) else [None]
    palette = dict(zip(hues, sns.color_palette("viridis", n_colors=max(len(hues), 1))))
    floor_col = f"floor_{y}"

    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        fig = Figure(figsize=(0.6 + height * 1.25 * len(cols), 0.4 + height * len(rows)),
                     layout="constrained")
        axes = fig.subplots(len(rows), len(cols), squeeze=False, sharex=True, sharey=True)
        if not len(data):
            axes[0, 0].text(0.5, 0.5, f"no done runs with {y} yet", ha="center",
                            va="center", transform=axes[0, 0].transAxes)
            return fig
        for i, row_key in enumerate(rows):
            row_data = data
            row_conditions = dict(zip(("target", "protocol"), row_key))
            for column, value in row_conditions.items():
                row_data = row_data[row_data[column] == value]
            for j, level in enumerate(cols):
                ax = axes[i, j]
                panel = _select(row_data, col, level)
                for h in hues:
                    _draw_series(ax, _select(panel, hue, h), x, y, palette[h],
                                 fits, {**row_conditions, **({hue: h} if hue else {}),
                                        **({col: level} if col else {})},
                                 floor_col if floor else None)
                ax.set_xscale("log")
                title = [f"{col} = {level}"] if col else []
                title += [str(v) for v in row_key]
                ax.set_title("  |  ".join(title))
                if i == len(rows) - 1:
                    ax.set_xlabel(x.replace("_", " "))
                if j == 0:
                    ax.set_ylabel(f"{y} (%)")
        handles = [Line2D([], [], color=palette[h], marker="o", label=str(h)) for h in hues
                   if h is not None]
        if floor and floor_col in data.columns and data[floor_col].notna().any():
            handles.append(Line2D([], [], color="0.4", ls="--", label="random trunk"))
        if handles:
            fig.legend(handles=handles, title=hue, loc="outside right center", frameon=False)
    return fig


def _draw_series(ax, points: pd.DataFrame, x: str, y: str, color, fits, conditions: dict,
                 floor_col: str | None) -> None:
    if not len(points):
        return
    stats = points.groupby(x)[y].agg(["mean", "std", "count"]).sort_index()
    xs = stats.index.to_numpy(float)
    yerr = stats["std"].fillna(0).to_numpy() if (stats["count"] > 1).any() else None
    ax.errorbar(xs, stats["mean"], yerr=yerr, fmt="o", color=color, ms=5, capsize=3,
                zorder=3)
    fit = _match_fit(fits, conditions) if isinstance(fits, pd.DataFrame) else None
    if fit is not None and len(xs) > 1:
        grid = np.geomspace(xs.min(), xs.max(), 60)
        ax.plot(grid, predict_row(fit, grid), color=color, lw=1.8, zorder=2)
    if floor_col and floor_col in points.columns and points[floor_col].notna().any():
        ax.axhline(points[floor_col].mean(), color=color, ls="--", lw=1.2, alpha=0.8,
                   zorder=1)


def plot_status(df: pd.DataFrame) -> Figure:
    """Horizontal bars: how many runs (not rows) are in each status, per sweep."""
    keys = [c for c in ("sweep", "run_id") if c in df.columns]
    runs = df.drop_duplicates(keys) if keys else df
    counts = runs.groupby(["sweep", "status"] if "sweep" in runs else ["status"]).size()
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        labels = [" / ".join(map(str, k)) if isinstance(k, tuple) else str(k)
                  for k in counts.index]
        fig = Figure(figsize=(6, 0.6 + 0.35 * max(len(counts), 1)), layout="constrained")
        ax = fig.subplots()
        statuses = [k[-1] if isinstance(k, tuple) else k for k in counts.index]
        bars = ax.barh(labels, counts.to_numpy(),
                       color=[STATUS_COLORS.get(s, "#555555") for s in statuses])
        ax.bar_label(bars, padding=3)
        ax.invert_yaxis()
        ax.set_xlabel("runs")
        ax.set_title(f"{len(runs)} runs by status")
    return fig
