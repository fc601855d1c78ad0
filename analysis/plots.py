"""Figures from collected results: the paper's figures in a sweep's terms, and run status.

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
    None fits the log-linear law here (without intervals); False draws no lines. A table
    made with ``keep_results=True`` also shades each line's bootstrap prediction band.
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
        result = fit.get("fit") if hasattr(fit, "get") else None
        if result is not None and len(getattr(result, "boot", ())):
            lo, hi = result.band(grid)
            ax.fill_between(grid, lo, hi, color=color, alpha=0.18, lw=0, zorder=1)
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


def _facet(n: int, height: float = 3.2, width: float = 4.0):
    fig = Figure(figsize=(0.6 + width * n, 0.5 + height), layout="constrained")
    return fig, fig.subplots(1, n, squeeze=False)[0]


def _targets(data: pd.DataFrame) -> list[tuple]:
    keys = [c for c in ("target", "protocol") if c in data.columns]
    return list(data[keys].drop_duplicates().sort_values(keys).itertuples(index=False, name=None))


def plot_model_size(df: pd.DataFrame, x: str = "params", y: str = "top1",
                    hue: str = "dataset_images", height: float = 3.2) -> Figure:
    """Transfer ``y`` against model size (log axis), one line per ``hue`` level (number of
    pretraining images), one panel per target x protocol; points are means over seeds
    (and over vocabularies and ablations, so pass `analysis.select.main_grid` rows)."""
    data = _done(df, x, y)
    panels = _targets(data) or [()]
    hues = _levels(data[hue]) if len(data) else []
    palette = dict(zip(hues, sns.color_palette("mako_r", n_colors=max(len(hues), 1))))
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        fig, axes = _facet(len(panels), height)
        for ax, key in zip(axes, panels):
            panel = data
            for column, value in zip(("target", "protocol"), key):
                panel = panel[panel[column] == value]
            for h in hues:
                means = panel[panel[hue] == h].groupby(x)[y].mean().sort_index()
                if len(means):
                    ax.plot(means.index.to_numpy(float), means.to_numpy(), "o-",
                            color=palette[h], label=f"{float(h):.3g}")
            ax.set_xscale("log")
            ax.set_xlabel("parameters" if x == "params" else x)
            ax.set_ylabel(f"{y} (%)")
            ax.set_title("  |  ".join(map(str, key)) or y)
        if not len(data):
            axes[0].text(0.5, 0.5, f"no done runs with {y} yet", ha="center", va="center",
                         transform=axes[0].transAxes)
        elif hues:
            axes[-1].legend(title=hue.replace("_", " "), frameon=False, fontsize="small")
    return fig


def vocab_matrix(df: pd.DataFrame, y: str = "top1") -> pd.DataFrame:
    """Mean ``y`` per vocabulary (rows) x target (columns), at the widest model and the
    largest dataset where each cell has done runs (the paper's Table 1 in miniature)."""
    data = _done(df, "vocab", y)
    if not len(data):
        return pd.DataFrame()
    cells = {}
    for (vocab, target), group in data.groupby(["vocab", "target"]):
        group = group[group["width"] == group["width"].max()]
        group = group[group["dataset_images"] == group["dataset_images"].max()]
        cells[(vocab, target)] = group[y].mean()
    table = pd.Series(cells).unstack()
    table.index.name, table.columns.name = "vocab", "target"
    return table.loc[_levels(table.index.to_series())]


def plot_vocab_matrix(df: pd.DataFrame, y: str = "top1") -> Figure:
    """Heatmap of `vocab_matrix`: which hashtag vocabulary transfers best to which target."""
    table = vocab_matrix(df, y)
    with sns.plotting_context("notebook", font_scale=0.85):
        fig = Figure(figsize=(1.8 + 1.3 * max(table.shape[1], 1),
                              1.2 + 0.5 * max(table.shape[0], 1)), layout="constrained")
        ax = fig.subplots()
        if table.empty:
            ax.text(0.5, 0.5, "no done runs yet", ha="center", va="center")
            return fig
        sns.heatmap(table.astype(float), annot=True, fmt=".1f", cmap="viridis", ax=ax,
                    cbar_kws={"label": f"{y} (%)"})
        ax.set_title(f"{y}: vocabulary x target (widest model, most images)")
    return fig


def ablation_axes(df: pd.DataFrame, axes=("resample", "label_noise")) -> list[str]:
    """The ablation axes this sweep varies among its done runs."""
    done = df[df["status"] == "done"] if "status" in df.columns else df
    return [a for a in axes if a in done.columns and done[a].nunique(dropna=True) > 1]


def plot_ablation(df: pd.DataFrame, axis: str, y: str = "top1") -> Figure:
    """Transfer ``y`` per level of one ablation ``axis`` (resampling, label noise), at the
    (width, dataset size, vocabulary) points where the sweep varies that axis; one panel
    per target x protocol, mean +- sd over seeds, the main-grid value first."""
    data = _done(df, axis, y)
    others = [a for a in ablation_axes(data) if a != axis]
    data = data[data.index.isin(_common(data, others).index)]
    keys = [c for c in ("width", "dataset_images", "vocab") if c in data.columns]
    varied = data.groupby(keys)[axis].transform("nunique") > 1
    data = data[varied]
    panels = _targets(data) or [()]
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        fig, axes = _facet(len(panels), 3.0, 3.4)
        for ax, key in zip(axes, panels):
            panel = data
            for column, value in zip(("target", "protocol"), key):
                panel = panel[panel[column] == value]
            stats = panel.groupby(axis)[y].agg(["mean", "std"])
            stats = stats.loc[_levels(stats.index.to_series())]
            ax.bar([str(v) for v in stats.index], stats["mean"],
                   yerr=stats["std"].fillna(0), capsize=3, color="#5b8db8")
            low = float((stats["mean"] - stats["std"].fillna(0)).min()) if len(stats) else 0
            ax.set_ylim(max(0.0, low - 5), None)
            ax.set_xlabel(axis.replace("_", " "))
            ax.set_ylabel(f"{y} (%)")
            ax.set_title("  |  ".join(map(str, key)))
    return fig


def _common(data: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    for axis in axes:
        data = data[data[axis] == data[axis].value_counts().idxmax()]
    return data


def plot_telemetry(tel: pd.DataFrame) -> Figure:
    """Per run against model size: throughput (images/s), MFU and peak memory."""
    logged = tel[tel["steps"] > 0]
    logged = logged[pd.to_numeric(logged["params"], errors="coerce") > 0]  # log x needs a size
    panels = [("images_per_s", "images / s", 1.0), ("mfu", "MFU", 1.0),
              ("max_mem_bytes", "max memory (GiB)", 2.0 ** -30)]
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        fig, axes = _facet(len(panels), 2.8, 3.4)
        for ax, (column, label, scale) in zip(axes, panels):
            ax.scatter(logged["params"], logged[column] * scale, s=14, color="#3b75af")
            if len(logged):  # a log axis with nothing on it cannot be drawn
                ax.set_xscale("log")
                if column == "images_per_s":
                    ax.set_yscale("log")
            ax.set_xlabel("parameters")
            ax.set_ylabel(label)
        axes[0].set_title(f"{len(logged)} runs with telemetry")
    return fig


def plot_frontier(df: pd.DataFrame, fits: dict[str, pd.DataFrame], x: str = "pretrain_flops",
                  y: str = "error", bins: int = 10, height: float = 3.2) -> Figure:
    """Error against compute (log-log), one panel per target x protocol: every done run
    (grey), the best run per log-bin of ``x`` (black), and each fitted law of ``fits``
    (law name -> `fit_groups` table by target and protocol, ``keep_results=True`` for
    bands) over the frontier."""
    from analysis.select import column, frontier

    data = df[df["status"] == "done"] if "status" in df.columns else df
    data = data.assign(**{y: column(data, y)}) if y not in data.columns else data
    data = data[data[x].notna() & data[y].notna()]
    panels = _targets(data) or [()]
    colors = dict(zip(fits, sns.color_palette("deep", n_colors=max(len(fits), 1))))
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        fig, axes = _facet(len(panels), height)
        for ax, key in zip(axes, panels):
            conditions = dict(zip(("target", "protocol"), key))
            panel = data
            for c, value in conditions.items():
                panel = panel[panel[c] == value]
            best = frontier(panel, x=x, y=y, bins=bins)
            ax.scatter(panel[x], panel[y], s=8, color="0.7", label="runs")
            ax.scatter(best[x], best[y], s=22, color="black", label="frontier", zorder=3)
            if len(best) > 1:
                grid = np.geomspace(float(best[x].min()), float(best[x].max()), 60)
                for name, table in fits.items():
                    fit = _match_fit(table, conditions)
                    if fit is None:
                        continue
                    ax.plot(grid, predict_row(fit, grid), color=colors[name], label=name)
                    result = fit.get("fit")
                    if result is not None and len(result.boot):
                        lo, hi = result.band(grid)
                        ax.fill_between(grid, lo, hi, color=colors[name], alpha=0.18, lw=0)
            if len(panel):  # a log axis with nothing on it cannot be drawn
                ax.set_xscale("log")
                ax.set_yscale("log")
            else:
                ax.text(0.5, 0.5, f"no done runs with {x} and {y}", ha="center",
                        va="center", transform=ax.transAxes)
            ax.set_xlabel(x.replace("_", " "))
            ax.set_ylabel(y)
            ax.set_title("  |  ".join(map(str, key)))
        axes[-1].legend(frameon=False, fontsize="small")
    return fig
