"""Figures from collected results: the paper's figures in a sweep's terms, and run status.

Functions return a `matplotlib.figure.Figure` built without pyplot, so they leave no
global figure state behind (safe in loops, scripts and tests); in a notebook, display the
returned figure or save it with ``fig.savefig``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.collect import design_columns
from analysis.fit import _require, fit_groups, predict_row
from analysis.select import DERIVED, accuracy_units, direction, frontier, main_grid
from analysis.select import column as derived_column

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


def _done(df: pd.DataFrame, x: str, y: str, units: str | None = None) -> pd.DataFrame:
    """Done rows with both ``x`` and ``y`` (``y`` may be a derived column, e.g. error)."""
    _require(df, (x, y))
    data = df[df["status"] == "done"] if "status" in df.columns else df
    if y not in data.columns:
        data = data.assign(**{y: derived_column(data, y, units).to_numpy()})
    return data[(data[x].notna() & data[y].notna()).to_numpy()]


PERCENT_COLUMNS = ("top1", "top5", "floor_top1", "floor_top5")
"""Accuracy columns of `analysis.collect` tables: percent, unless their values are all
within [0, 1] (see `analysis.select.accuracy_units`)."""


def _ylabel(y: str, values, units: str | None = None) -> str:
    """``y`` with "(%)" only when it is in percent: ``units="percent"``, or one of the
    `PERCENT_COLUMNS` whose values say percent. Derived errors are fractions."""
    if units is None and y in PERCENT_COLUMNS:
        units = accuracy_units(values, None, y)
    label = y.replace("_", " ")
    return f"{label} (%)" if units == "percent" and y not in DERIVED else label


def _compact(value: float) -> str:
    """A short tick label: 20k, 1.5M, 3G, 0.02."""
    if not math.isfinite(value) or value == 0:
        return "0"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}" if abs(value) >= 1e-3 else f"{value:.0e}"


class _SpanLogLocator(LogLocator):
    """Log ticks at 1-2-3-5 per decade on an axis spanning under 1.5 decades (every integer
    under half a decade), 1-3 under 2.5, else decades: with `_compact` labels they never
    run into each other, whatever the span."""

    def tick_values(self, vmin, vmax):
        if vmin > 0 and vmax > 0:
            span = abs(math.log10(vmax) - math.log10(vmin))
            subs = ((1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0) if span < 0.5
                    else (1.0, 2.0, 3.0, 5.0) if span < 1.5 else (1.0, 3.0) if span < 2.5
                    else (1.0,))
            self.set_params(subs=subs)
        return super().tick_values(vmin, vmax)


def _log_axis(ax, which: str = "x") -> None:
    """Log scale on ``which`` axis with legible ticks (`_SpanLogLocator`, `_compact`);
    minor ticks stay, unlabelled."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(_SpanLogLocator(numticks=8))
    axis.set_major_formatter(FuncFormatter(lambda v, _: _compact(v)))
    axis.set_minor_formatter(NullFormatter())


def _panels(data: pd.DataFrame, col: str | None) -> tuple[list, list]:
    """Row keys (target, protocol) and column levels of the facet grid."""
    keys = [c for c in ("target", "protocol") if c in data.columns]
    rows = list(data[keys].drop_duplicates().sort_values(keys)
                .itertuples(index=False, name=None)) if keys else []
    cols = _levels(data[col]) if col else []
    return rows or [()], cols or [None]


def _fit_by(fits: pd.DataFrame) -> list[str]:
    """The grouping columns of a `fit_groups` table (those before ``law``)."""
    cols = list(fits.columns)
    return cols[:cols.index("law")] if "law" in cols else []


def _match_fit(fits: pd.DataFrame, conditions: dict) -> pd.Series | None:
    """The row of ``fits`` for the group ``conditions`` names, or None.

    Every grouping column of ``fits`` that varies must be in ``conditions``: a fit table
    grouped by a column the panel does not fix has no single line to draw (a warning
    says so), rather than the first group's.
    """
    by = _fit_by(fits)
    loose = [c for c in by if c not in conditions and fits[c].nunique(dropna=False) > 1]
    if loose:
        warnings.warn(f"fits are grouped by {loose}, which this panel does not fix "
                      f"({sorted(conditions)}): no line drawn; pass by={by}", stacklevel=3)
        return None
    mask = np.ones(len(fits), bool)
    for column, value in conditions.items():
        if column in fits.columns:
            mask &= (fits[column].astype(str) == str(value)).to_numpy()
    if "message" in fits:
        mask &= fits["message"].fillna("").eq("").to_numpy()
    match = fits[mask]
    return match.iloc[0] if len(match) else None


def plot_scaling(df: pd.DataFrame, fits: pd.DataFrame | bool | None = None,
                 x: str = "dataset_images", y: str = "top1", hue: str | None = "width",
                 col: str | None = "vocab", target: str | Sequence[str] | None = None,
                 protocol: str | None = None, floor: bool = True,
                 height: float = 3.4, units: str | None = None) -> Figure:
    """Transfer ``y`` against pretraining ``x`` (log axis) for the done rows of ``df``.

    One panel per ``col`` level (vocabulary) and per target x protocol (one row each; pass
    ``target`` to keep some). In each panel one colour per ``hue`` level (width): the mean
    over seeds with a +-1 sd error bar when there are several seeds, the fitted law as a
    line, and the random-trunk floor (mean ``floor_<y>``) as a dashed line.

    ``fits`` is a `fit_groups` table to draw (matched on hue, col, target and protocol);
    None fits the log-linear law here (without intervals); False draws no lines. A table
    made with ``keep_results=True`` also shades each line's bootstrap prediction band.
    ``units`` (``"percent"``/``"fraction"``) labels y; by default top1/top5 say "(%)"
    only when their values are percentages.
    """
    data = _done(df, x, y, units)
    # the defaults name a sweep's columns; another table without them gets one colour /
    # one column of panels, while a column the caller names must exist
    hue = None if hue == "width" and hue not in data.columns else hue
    col = None if col == "vocab" and col not in data.columns else col
    _require(data, [c for c in (hue, col) if c])
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
                _log_axis(ax, "x")
                title = [f"{col} = {level}"] if col else []
                title += [str(v) for v in row_key]
                ax.set_title("  |  ".join(title))
                if i == len(rows) - 1:
                    ax.set_xlabel(x.replace("_", " "))
                if j == 0:
                    ax.set_ylabel(_ylabel(y, data[y], units))
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


def _groups(data: pd.DataFrame, by: Sequence[str] = ("target", "protocol")
            ) -> tuple[list[str], list[tuple]]:
    """The columns of ``by`` the table has, and one key per panel: each distinct
    combination of them, or a single ``()`` (one panel) when it has none of them."""
    keys = [c for c in by if c in data.columns]
    if not keys or not len(data):
        return keys, [()]
    return keys, list(data[keys].drop_duplicates().sort_values(keys)
                      .itertuples(index=False, name=None))


def _panel(data: pd.DataFrame, keys: list[str], key: tuple) -> pd.DataFrame:
    mask = np.ones(len(data), bool)
    for column, value in zip(keys, key):
        mask &= (data[column] == value).to_numpy()
    return data[mask]


def plot_model_size(df: pd.DataFrame, x: str = "params", y: str = "top1",
                    hue: str = "dataset_images", height: float = 3.2,
                    by: Sequence[str] = ("target", "protocol"),
                    units: str | None = None) -> Figure:
    """Transfer ``y`` against model size (log axis), one line per ``hue`` level (number of
    pretraining images), one panel per group of ``by`` (target x protocol; one panel for
    a table without those columns); points are means over seeds (and over vocabularies
    and ablations, so pass `analysis.select.main_grid` rows)."""
    data = _done(df, x, y, units)
    keys, panels = _groups(data, by)
    hues = _levels(data[hue]) if len(data) and hue in data.columns else [None]
    palette = dict(zip(hues, sns.color_palette("mako_r", n_colors=max(len(hues), 1))))
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        fig, axes = _facet(len(panels), height)
        for ax, key in zip(axes, panels):
            panel = _panel(data, keys, key)
            for h in hues:
                means = _select(panel, hue if h is not None else None, h).groupby(x)[y].mean()
                means = means.sort_index()
                if len(means):
                    label = _compact(float(h)) if isinstance(h, numbers.Real) else str(h)
                    ax.plot(means.index.to_numpy(float), means.to_numpy(), "o-",
                            color=palette[h], label=label)
            _log_axis(ax, "x")
            ax.set_xlabel("parameters" if x == "params" else x.replace("_", " "))
            ax.set_ylabel(_ylabel(y, data[y], units))
            ax.set_title("  |  ".join(map(str, key)) or y)
        if not len(data):
            axes[0].text(0.5, 0.5, f"no done runs with {y} yet", ha="center", va="center",
                         transform=axes[0].transAxes)
        elif hues != [None]:
            axes[-1].legend(title=hue.replace("_", " "), frameon=False, fontsize="small")
    return fig


def where_varied(data: pd.DataFrame, axis: str) -> pd.DataFrame:
    """The rows at pretraining points where ``axis`` takes more than one value: a figure
    that compares levels of ``axis`` shows these, so a level never pools runs that also
    differ in something else (e.g. a vocabulary grid trained twice as long). A point is
    every pretraining column (`design_columns` without transfer settings) but ``axis``, the
    run seed and the sweep."""
    keys = [c for c in design_columns(data, transfer=False) if c not in (axis, "seed", "sweep")]
    if not keys or not len(data):
        return data
    # list-valued axes (an axis over lists, e.g. milestones) arrive as arrays: group on tuples
    frame = pd.DataFrame({k: data[k].map(_hashable) for k in keys}, index=data.index)
    frame[axis] = data[axis].map(_hashable)
    levels = frame.groupby(keys, dropna=False)[axis].transform("nunique")
    return data[(levels > 1).to_numpy()]


def _hashable(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_hashable(v) for v in value)
    return value


def _one_protocol(data: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """The linear-probe rows (else the most common protocol's): one cell, one protocol."""
    if "protocol" not in data.columns or data["protocol"].isna().all():
        return data, None
    protocols = data["protocol"].dropna()
    chosen = "linear" if (protocols == "linear").any() else protocols.value_counts().idxmax()
    return data[data["protocol"].eq(chosen).fillna(False).to_numpy()], str(chosen)


def vocab_matrix(df: pd.DataFrame, y: str = "top1") -> pd.DataFrame:
    """Mean ``y`` per vocabulary (rows) x target (columns): the paper's Table 1 in
    miniature. Like with like: one protocol (linear if run), the ablation axes at their
    main-grid values, only the points where the sweep varies the vocabulary (when it does),
    and there the widest model, the largest dataset and the longest training."""
    data = _done(df, "vocab", y)
    data, protocol = _one_protocol(data)
    data = main_grid(data)
    varied = where_varied(data, "vocab")
    data = varied if len(varied) else data
    if not len(data):
        return pd.DataFrame()
    cells = {}
    for (vocab, target), group in data.groupby(["vocab", "target"]):
        for column in ("width", "dataset_images", "images_seen"):
            if column in group.columns and group[column].notna().any():
                group = group[group[column] == group[column].max()]
        cells[(vocab, target)] = group[y].mean()
    table = pd.Series(cells).unstack()
    table.index.name, table.columns.name = "vocab", "target"
    table = table.loc[_levels(table.index.to_series())]
    table.attrs["protocol"] = protocol   # the one protocol its cells read (None: no column)
    return table


def plot_vocab_matrix(df: pd.DataFrame, y: str = "top1") -> Figure:
    """Heatmap of `vocab_matrix`: which hashtag vocabulary transfers best to which target."""
    table = vocab_matrix(df, y)
    with sns.plotting_context("notebook", font_scale=0.85):
        label = max((len(str(v)) for v in table.index), default=4)   # row labels, level
        fig = Figure(figsize=(max(5.6, 1.2 + 0.08 * label + 1.3 * max(table.shape[1], 1)),
                              1.2 + 0.5 * max(table.shape[0], 1)), layout="constrained")
        ax = fig.subplots()
        if table.empty:
            ax.text(0.5, 0.5, "no done runs yet", ha="center", va="center")
            return fig
        sns.heatmap(table.astype(float), annot=True, fmt=".1f", cmap="viridis", ax=ax,
                    cbar_kws={"label": _ylabel(y, table.to_numpy())})
        protocol = table.attrs.get("protocol")
        where = f"{protocol}, " if protocol else ""
        ax.tick_params(axis="y", rotation=0)
        ax.set_title(f"{y}: vocabulary x target ({where}widest model, most images)")
    return fig


def ablation_axes(df: pd.DataFrame, axes=("resample", "label_noise")) -> list[str]:
    """The ablation axes this sweep varies among its done runs."""
    done = df[df["status"] == "done"] if "status" in df.columns else df
    return [a for a in axes if a in done.columns and done[a].nunique(dropna=True) > 1]


def plot_ablation(df: pd.DataFrame, axis: str, y: str = "top1",
                  by: Sequence[str] = ("target", "protocol"),
                  units: str | None = None) -> Figure:
    """Transfer ``y`` per level of one ablation ``axis`` (resampling, label noise), at the
    pretraining points where the sweep varies that axis (`where_varied`: runs that differ
    only in ``axis`` and the seed); one panel per group of ``by`` (target x protocol; one
    panel for a table without them), mean +- sd over seeds, the main-grid value first."""
    data = _done(df, axis, y, units)
    others = [a for a in ablation_axes(data) if a != axis]
    data = where_varied(_common(data, others), axis)
    panel_keys, panels = _groups(data, by)
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        fig, axes = _facet(len(panels), 3.0, 3.4)
        for ax, key in zip(axes, panels):
            panel = _panel(data, panel_keys, key)
            stats = panel.groupby(axis)[y].agg(["mean", "std"])
            stats = stats.loc[_levels(stats.index.to_series())]
            ax.bar([str(v) for v in stats.index], stats["mean"],
                   yerr=stats["std"].fillna(0), capsize=3, color="#5b8db8")
            low = float((stats["mean"] - stats["std"].fillna(0)).min()) if len(stats) else 0
            pct = _ylabel(y, data[y], units).endswith("(%)")
            ax.set_ylim(max(0.0, low - (5 if pct else 0.05 * abs(low))), None)
            ax.set_xlabel(axis.replace("_", " "))
            ax.set_ylabel(_ylabel(y, data[y], units))
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
                _log_axis(ax, "x")
                if column == "images_per_s":
                    _log_axis(ax, "y")
            ax.set_xlabel("parameters")
            ax.set_ylabel(label)
        axes[0].set_title(f"{len(logged)} runs with telemetry")
    return fig


def plot_frontier(df: pd.DataFrame, fits: dict[str, pd.DataFrame], x: str = "pretrain_flops",
                  y: str = "error", bins: int = 10, height: float = 3.2,
                  by: Sequence[str] | None = None, best: str | None = None,
                  units: str | None = None) -> Figure:
    """``y`` against ``x`` (log-log), one panel per group: every done run (grey), the
    best run per log-bin of ``x`` (black), and each fitted law of ``fits`` (label ->
    `fit_groups` table, ``keep_results=True`` for bands) over the frontier.

    Groups are ``by``, by default the grouping columns of the fit tables (else target x
    protocol, where the table has them; one panel when it has none); each panel draws
    the fit of its own group. The best run is the smallest y for a decreasing law (the
    laws of ``fits``), or as ``best`` (``"min"``/``"max"``) says.
    """
    tables = [t for t in fits.values() if len(t)]
    if by is None:
        by = next((_fit_by(t) for t in tables if _fit_by(t)), ("target", "protocol"))
    if best is None:
        laws = {str(law) for t in tables for law in t["law"].unique()}
        best = direction(None, min(laws)) if laws else None
    best = direction(best)
    data = _done(df, x, y, units)
    keys, panels = _groups(data, by)
    colors = dict(zip(fits, sns.color_palette("deep", n_colors=max(len(fits), 1))))
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        fig, axes = _facet(len(panels), height)
        for ax, key in zip(axes, panels):
            conditions = dict(zip(keys, key))
            panel = _panel(data, keys, key)
            chosen = frontier(panel, x=x, y=y, bins=bins, best=best)
            ax.scatter(panel[x], panel[y], s=8, color="0.7", label="runs")
            ax.scatter(chosen[x], chosen[y], s=22, color="black", label="frontier", zorder=3)
            if len(chosen) > 1:
                grid = np.geomspace(float(chosen[x].min()), float(chosen[x].max()), 60)
                for name, table in fits.items():
                    fit = _match_fit(table, conditions) if len(table) else None
                    if fit is None:
                        continue
                    ax.plot(grid, predict_row(fit, grid), color=colors[name], label=name)
                    result = fit.get("fit")
                    if result is not None and len(result.boot):
                        lo, hi = result.band(grid)
                        ax.fill_between(grid, lo, hi, color=colors[name], alpha=0.18, lw=0)
            if len(panel):  # a log axis with nothing on it cannot be drawn
                _log_axis(ax, "x")
                _log_axis(ax, "y")
            else:
                ax.text(0.5, 0.5, f"no done runs with {x} and {y}", ha="center",
                        va="center", transform=ax.transAxes)
            ax.set_xlabel(x.replace("_", " "))
            ax.set_ylabel(_ylabel(y, data[y], units))
            ax.set_title("  |  ".join(map(str, key)))
        axes[-1].legend(frameon=False, fontsize="small")
    return fig
