"""Property-based checks (Hypothesis) of row selection and fitting: how a table is laid
out (row order, column names, a duplicated index) never changes the answer, and
rescaling y by 100 (percent vs fraction) changes it only in the way the law says."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import fit_law, fit_xy, frontier

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tables(draw, min_rows=6, max_rows=30):
    """A results table of runs: distinct sizes ``x`` over several decades and distinct
    positive ``y`` (errors below 1), in arbitrary row order."""
    n = draw(st.integers(min_rows, max_rows))
    xs = draw(st.lists(st.integers(1_000, 10 ** 8), min_size=n, max_size=n, unique=True))
    ys = draw(st.lists(st.integers(1, 999), min_size=n, max_size=n, unique=True))
    return pd.DataFrame({"x": np.array(xs, float), "y": np.array(ys, float) / 1000})


def _picked(df, x="x", y="y"):
    return sorted(zip(df[x].to_numpy(), df[y].to_numpy()))


@SETTINGS
@given(tables(), st.integers(1, 8), st.sampled_from(["min", "max"]), st.randoms())
def test_frontier_ignores_row_order_column_names_and_index(df, bins, best, rnd):
    want = _picked(frontier(df, "x", "y", bins=bins, best=best))
    assert 1 <= len(want) <= bins and len({x for x, _ in want}) == len(want)
    order = list(range(len(df)))
    rnd.shuffle(order)
    assert _picked(frontier(df.iloc[order], "x", "y", bins=bins, best=best)) == want
    renamed = df.rename(columns={"x": "Seen Examples", "y": "my metric"})
    got = frontier(renamed, "Seen Examples", "my metric", bins=bins, best=best)
    assert _picked(got, "Seen Examples", "my metric") == want
    same_label = df.set_axis([0] * len(df))  # every row has index label 0
    assert _picked(frontier(same_label, "x", "y", bins=bins, best=best)) == want
    doubled = pd.concat([df, df.assign(y=df.y + 1)])  # concat: duplicate labels, worse runs
    if best == "min":
        assert _picked(frontier(doubled, "x", "y", bins=bins, best=best)) == want


@SETTINGS
@given(tables(), st.integers(1, 8), st.sampled_from(["min", "max"]))
def test_frontier_picks_the_same_runs_when_y_is_in_percent(df, bins, best):
    frac = frontier(df, "x", "y", bins=bins, best=best)
    pct = frontier(df.assign(y=100 * df.y), "x", "y", bins=bins, best=best)
    assert list(frac.x) == list(pct.x)


@SETTINGS
@given(tables(min_rows=4), st.randoms())
def test_power_fit_is_invariant_to_layout_and_scales_with_y(df, rnd):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = fit_xy(df.x, df.y, "power", n_boot=0)
        order = list(range(len(df)))
        rnd.shuffle(order)
        table = df.iloc[order].rename(columns={"x": "compute", "y": "loss"})
        table = table.set_axis([7] * len(df))
        moved = fit_law(table, x="compute", y="loss", law="power", n_boot=0)
        scaled = fit_xy(df.x, 100 * df.y, "power", n_boot=0)
    for name in ("a", "b"):
        assert moved.params[name] == pytest.approx(base.params[name], rel=1e-9, abs=1e-12)
    assert scaled.params["a"] == pytest.approx(100 * base.params["a"], rel=1e-9)
    assert scaled.params["b"] == pytest.approx(base.params["b"], rel=1e-9, abs=1e-12)
    assert moved.n == base.n == len(df) and moved.n_x == len(df)


@SETTINGS
@given(tables(min_rows=4))
def test_loglinear_fit_scales_both_parameters_with_y(df):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = fit_xy(df.x, df.y, "loglinear", n_boot=0)
        scaled = fit_xy(df.x, 100 * df.y, "loglinear", n_boot=0)
    for name in ("a", "b"):
        assert scaled.params[name] == pytest.approx(100 * base.params[name], rel=1e-7,
                                                    abs=1e-9)


@SETTINGS
@given(tables(min_rows=8), st.integers(2, 6), st.randoms())
def test_frontier_fit_is_invariant_to_layout(df, bins, rnd):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = fit_law(df, x="x", y="y", law="power", frontier_bins=bins, n_boot=0)
        order = list(range(len(df)))
        rnd.shuffle(order)
        other = pd.concat([df.iloc[order], df.assign(y=df.y * 2)])  # dominated copies
        moved = fit_law(other.rename(columns={"y": "err"}), x="x", y="err", law="power",
                        frontier_bins=bins, n_boot=0)
    assert moved.n == base.n
    for name in ("a", "b"):
        assert moved.params[name] == pytest.approx(base.params[name], rel=1e-9, abs=1e-12)
