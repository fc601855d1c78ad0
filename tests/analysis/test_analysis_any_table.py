"""Analysis on a results table that is not ours (issue 13): every path gives the right
answer or says why not. One regression test per numbered item of the issue."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest


def _curve(n_per_size=3, seed=0, sizes=(1e3, 1e4, 1e5, 1e6, 1e7)):
    """Runs of a decreasing error law, several runs per size: the best of each size lies
    on ``0.9 * x**-0.2``, the others above it (dominated runs)."""
    rng = np.random.default_rng(seed)
    rows = []
    for x in sizes:
        best = 0.9 * x ** -0.2
        for k in range(n_per_size):
            worse = best * (1 + (0.3 + 0.2 * rng.random()) * k)
            rows.append({"flops": x * (1 + 0.01 * k), "err_rate": worse, "group": "g"})
    return pd.DataFrame(rows)


# --- 1: frontier direction from the law or best=, never from the column's name

def test_frontier_direction_comes_from_the_law_not_the_column_name():
    from analysis import fit_law, frontier

    df = _curve()
    best = df.groupby(np.round(np.log10(df.flops)))["err_rate"].min().to_numpy()
    # a decreasing law keeps the minimum per bin, whatever the column is called
    fit = fit_law(df, x="flops", y="err_rate", law="power", frontier_bins=5, n_boot=0)
    assert fit.n == 5
    np.testing.assert_allclose(fit.residuals, 0, atol=1e-9)  # the best runs lie on the law
    kept = frontier(df, x="flops", y="err_rate", bins=5, best="min")
    np.testing.assert_allclose(np.sort(kept.err_rate.to_numpy()), np.sort(best))
    with pytest.raises(ValueError, match="best="):
        frontier(df, x="flops", y="err_rate", bins=5)  # no silent guess


# --- 2: extrapolate(...).held keeps the observed y when y is named `error`

def test_extrapolation_table_keeps_observed_error_values():
    from analysis import extrapolate

    x = np.repeat([1e3, 1e4, 1e5, 1e6], 2)
    err = 0.8 * x ** -0.3 * np.tile([1.0, 1.05], 4)
    ext = extrapolate(pd.DataFrame({"n": x, "error": err}), x="n", y="error", law="power",
                      n_boot=0)
    np.testing.assert_allclose(ext.held["error"].to_numpy(), err[-2:])
    np.testing.assert_allclose(ext.held["pred_minus_y"].to_numpy(),
                               ext.held["pred"].to_numpy() - err[-2:])


# --- 3: plots on a table without target/protocol: one panel per group, matching fits

def _panels(fig):
    return [ax for ax in fig.axes if ax.collections or ax.lines or ax.containers]


def test_plot_frontier_draws_one_panel_per_group_of_any_table():
    from analysis import fit_groups, plot_frontier

    df = pd.concat([_curve(seed=1).assign(group="small"),
                    _curve(seed=2).assign(group="big", err_rate=lambda d: d.err_rate / 2)],
                   ignore_index=True)
    fits = fit_groups(df, by=("group",), x="flops", y="err_rate", law="power",
                      frontier_bins=5, n_boot=0)
    fig = plot_frontier(df, {"power": fits}, x="flops", y="err_rate", bins=5)
    axes = _panels(fig)
    assert len(axes) == 2  # one per group, not one per row (29 rows gave 29 panels)
    assert fig.get_size_inches()[0] < 12
    # each panel's line is its own group's fit: at the panel's largest x, the line sits
    # on that group's frontier (the "big" group's errors are half the "small" group's)
    for ax in axes:
        group = ax.get_title()
        line = next(line for line in ax.lines if len(line.get_xdata()) > 10)
        want = fits.set_index("group").loc[group]
        x_end = line.get_xdata()[-1]
        assert line.get_ydata()[-1] == pytest.approx(want.a * x_end ** -want.b, rel=1e-6)


def test_plots_of_a_table_without_our_columns_draw_one_panel():
    from analysis import plot_ablation, plot_model_size, plot_scaling

    df = pd.DataFrame({"params": np.repeat([1e6, 2e6, 4e6], 4),
                       "dataset_images": np.tile([1e4, 1e5], 6),
                       "top1": np.linspace(20, 60, 12),
                       "resample": np.tile(["natural", "natural", "sqrt", "sqrt"], 3)})
    assert len(plot_model_size(df).axes) == 1
    assert len(plot_ablation(df, "resample").axes) == 1
    assert len(plot_scaling(df).axes) == 1  # no width, vocab, target or protocol column


def test_match_fit_uses_every_grouping_column_of_the_fit_table():
    from analysis.plots import _match_fit

    fits = pd.DataFrame({"model": ["A", "B"], "law": ["power"] * 2, "a": [1.0, 2.0],
                         "b": [0.1, 0.2], "message": ["", ""]})
    assert _match_fit(fits, {"model": "B"})["a"] == 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _match_fit(fits, {"target": "fine"}) is None  # ambiguous: not the first row


# --- 4: a duplicated row index does not double frontier points

def test_frontier_of_a_table_with_a_duplicated_index_keeps_one_row_per_bin():
    from analysis import fit_law, frontier

    a = _curve(seed=1)
    df = pd.concat([a, a.assign(err_rate=a.err_rate * 1.5)])  # index 0..14 twice
    assert df.index.duplicated().any()
    kept = frontier(df, x="flops", y="err_rate", bins=5, best="min")
    assert len(kept) == 5
    assert fit_law(df, x="flops", y="err_rate", law="power", frontier_bins=5, n_boot=0).n == 5


# --- 5: intervals inside the law's bounds; unidentified fits warn and say so

def test_intervals_are_clipped_to_the_law_bounds():
    from analysis import LAWS, Law, fit_xy, register_law

    @register_law
    class Rising(Law):
        """y = a + b log10 x with b >= 0 (a bounded exponent-like slope), closed form."""
        name = "test_rising"
        params = ("a", "b")
        formula = "a + b * log10(x)"

        def f(self, x, theta):
            return theta[0] + theta[1] * np.log10(x)

        def bounds(self, x=None, y=None):
            return np.array([-np.inf, 0.0]), np.array([np.inf, np.inf])

        def solve(self, x, y, **options):
            b = max(np.polyfit(np.log10(x), y, 1)[0], 0.0)
            return np.array([np.mean(y) - b * np.mean(np.log10(x)), b]), {}

    try:
        rng = np.random.default_rng(0)
        x = np.geomspace(1e2, 1e6, 5)
        y = 10 + 0.3 * np.log10(x) + rng.normal(0, 1.0, 5)  # slope near its bound, noisy
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_xy(x, y, "test_rising", n_boot=200, seed=0)
        assert fit.params["b"] >= 0
        assert fit.intervals["b"][0] >= 0, fit.intervals["b"]  # widened, but not past 0
        assert fit.intervals["b"][1] > fit.params["b"]
    finally:
        LAWS.pop("test_rising", None)


def test_a_fit_the_points_cannot_identify_warns_and_says_so():
    from analysis import FitWarning, fit_groups, fit_xy

    rng = np.random.default_rng(0)
    x = np.geomspace(1e3, 1e7, 5)
    y = (2.0 * x ** -0.3 + 0.02) * np.exp(rng.normal(0, 0.05, 5))
    with pytest.warns(FitWarning, match="5 points for 4 parameters"):
        fit = fit_xy(x, y, "saturating", n_boot=8, seed=0)
    assert fit.warnings and "5 points for 4 parameters" in repr(fit)
    assert fit.diagnostics["points_per_param"] == pytest.approx(1.25)
    for name, (lo, hi) in fit.intervals.items():  # an estimate on a bound stays inside
        assert lo <= fit.params[name] <= hi, (name, lo, fit.params[name], hi)
    with pytest.warns(FitWarning):
        table = fit_groups(pd.DataFrame({"x": x, "y": y}), by=(), x="x", y="y",
                           law="saturating", n_boot=0)
    assert "5 points for 4 parameters" in table.warning.iloc[0]


# --- 6: the derived error column knows fraction from percent; no bare KeyError

def test_error_from_top1_as_a_fraction_is_not_read_as_percent():
    from analysis import fit_law

    x = np.geomspace(1e3, 1e7, 5)
    err = 0.8 * x ** -0.1
    pct = fit_law(pd.DataFrame({"n": x, "top1": 100 * (1 - err)}), x="n", y="error",
                  law="power", n_boot=0)
    frac = fit_law(pd.DataFrame({"n": x, "top1": 1 - err}), x="n", y="error", law="power",
                   n_boot=0)
    assert pct.params["b"] == pytest.approx(0.1, abs=1e-6)
    assert frac.params["b"] == pytest.approx(0.1, abs=1e-6)
    told = fit_law(pd.DataFrame({"n": x, "top1": 1 - err}), x="n", y="error", law="power",
                   n_boot=0, units="fraction")
    assert told.params["b"] == pytest.approx(0.1, abs=1e-6)


def test_error_without_a_top1_column_is_a_one_line_error_naming_the_fix():
    from analysis import fit_law

    df = pd.DataFrame({"n": [1e3, 1e4, 1e5], "acc": [0.2, 0.3, 0.4]})
    with pytest.raises(KeyError) as info:
        fit_law(df, x="n", y="error", law="power")
    text = str(info.value)
    assert "top1" in text and "y=" in text and "\n" not in text and text != "'top1'"


# --- 7: extrapolate with frontier_bins scores against the held-out frontier; coverage

def test_extrapolation_with_a_frontier_is_scored_on_the_held_out_frontier():
    from analysis import extrapolate

    df = _curve(n_per_size=3, seed=4)
    ext = extrapolate(df, x="flops", y="err_rate", law="power", frontier_bins=5, n_boot=0)
    assert len(ext.held) == 1  # the best held-out run, not the dominated ones
    assert ext.mae < 0.01
    assert ext.scored_on == "frontier"


def test_trust_verdict_is_not_trusted_when_no_held_out_point_is_inside_the_band():
    from analysis.extrapolate import verdict

    assert not verdict(0.01, 0.01, 1.0, 0.0).startswith("trusted")
    assert verdict(0.01, 0.01, 1.0, 1.0).startswith("trusted")


# --- 8: consistent letters, fit_table exported, n_x after the frontier, honest units

def test_parameter_letters_mean_the_same_in_every_law():
    from analysis import fit_xy, get_law

    x = np.geomspace(1e3, 1e7, 8)
    y = 3.0 * x ** -0.25
    power = fit_xy(x, y, "power", n_boot=0)
    assert power.params["a"] == pytest.approx(3.0, rel=1e-6)  # scale
    assert power.params["b"] == pytest.approx(0.25, rel=1e-6)  # exponent, as in saturating
    assert "x**-b" in get_law("power").formula and "**-b" in get_law("saturating").formula


def test_fit_table_is_exported_and_n_x_counts_fitted_points():
    import analysis
    from analysis import fit_groups

    assert callable(analysis.fit_table)
    df = _curve(n_per_size=3)
    fits = fit_groups(df, by=("group",), x="flops", y="err_rate", law="power",
                      frontier_bins=5, n_boot=0)
    assert fits.n.iloc[0] == 5 and fits.n_x.iloc[0] == 5  # not 15 distinct x before it


def test_y_labels_say_percent_only_for_percent():
    from analysis import plot_model_size

    df = pd.DataFrame({"params": [1e6, 2e6, 4e6], "dataset_images": [1e4] * 3,
                       "acc": [0.2, 0.3, 0.4]})
    assert "%" not in plot_model_size(df, y="acc").axes[0].get_ylabel()
    pct = plot_model_size(df.assign(top1=[20.0, 30.0, 40.0]))
    assert "(%)" in pct.axes[0].get_ylabel()


# --- 9: log axes spanning less than a decade keep their tick labels apart

def _overlaps(ax, which):
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    axis = ax.xaxis if which == "x" else ax.yaxis
    boxes = [t.get_window_extent(renderer) for t in
             axis.get_majorticklabels() + axis.get_minorticklabels()
             if t.get_visible() and t.get_text()]
    boxes = sorted(boxes, key=lambda b: b.x0 if which == "x" else b.y0)
    return [(a, b) for a, b in zip(boxes, boxes[1:])
            if (b.x0 < a.x1 if which == "x" else b.y0 < a.y1)], len(boxes)


def test_log_axes_spanning_less_than_a_decade_have_legible_ticks():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from analysis import plot_model_size, plot_telemetry

    df = pd.DataFrame({"params": np.repeat([12_000, 34_000, 95_000], 2),
                       "dataset_images": np.tile([1e4, 1e5], 3),
                       "top1": np.linspace(20, 60, 6)})
    tel = pd.DataFrame({"params": [12_000.0, 34_000.0, 95_000.0], "steps": [5, 5, 5],
                        "images_per_s": [900.0, 1300.0, 2100.0], "mfu": [0.01, 0.02, 0.03],
                        "max_mem_bytes": [2.0 ** 30, 2.0 ** 31, 2.0 ** 32]})
    for fig in (plot_model_size(df), plot_telemetry(tel)):
        FigureCanvasAgg(fig)
        fig.canvas.draw()
        for ax in fig.axes:
            if ax.get_xscale() == "log":
                clash, shown = _overlaps(ax, "x")
                assert not clash and shown >= 2, (ax.get_xlabel(), clash)
            if ax.get_yscale() == "log":
                clash, shown = _overlaps(ax, "y")
                assert not clash and shown >= 2, (ax.get_ylabel(), clash)
