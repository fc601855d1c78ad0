"""Laws and fits: known parameters come back, groups are one row each, laws plug in."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import (
    LAWS,
    CollectWarning,
    FitResult,
    Law,
    collect,
    fit_groups,
    fit_law,
    get_law,
    register_law,
)
from analysis.fakes import true_a, true_b, true_top1
from analysis.fit import fit_xy, predict_row


@pytest.fixture
def df(sweep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollectWarning)
        return collect(sweep, write=False)


def _group(df, width, vocab, target="fine"):
    return df[(df.status == "done") & (df.width == width) & (df.vocab == vocab)
              & (df.target == target)]


@pytest.mark.parametrize("width,vocab", [(4, "1000"), (4, "all"), (16, "1000"), (16, "all")])
def test_loglinear_fit_recovers_known_params_within_bootstrap_interval(df, width, vocab):
    result = fit_law(_group(df, width, vocab), x="dataset_images", y="top1", n_boot=200, seed=0)
    assert isinstance(result, FitResult) and result.success and result.n == 9
    for name, truth in (("a", true_a(width, vocab)), ("b", true_b(width, vocab))):
        lo, hi = result.intervals[name]
        assert lo <= truth <= hi, (name, truth, lo, hi)
        assert lo < result.params[name] < hi
    assert result.r2 > 0.97 and result.rmse < 1.0
    assert result.residuals.shape == (9,)


def test_bootstrap_is_reproducible_with_a_seed_and_n_boot_zero_skips_it(df):
    points = _group(df, 4, "1000")
    assert fit_law(points, seed=3).intervals == fit_law(points, seed=3).intervals
    quick = fit_law(points, n_boot=0)
    assert math.isnan(quick.intervals["b"][0]) and not math.isnan(quick.params["b"])


def test_cases_bootstrap_and_huber_loss_also_recover_the_slope(df):
    points = _group(df, 16, "all")
    cases = fit_law(points, bootstrap="cases")
    assert cases.intervals["b"][0] <= true_b(16, "all") <= cases.intervals["b"][1]
    robust = fit_law(points, loss="huber", n_boot=50)
    assert robust.params["b"] == pytest.approx(true_b(16, "all"), abs=0.6)


def test_fit_result_predicts_and_prints_as_a_table(df):
    result = fit_law(_group(df, 4, "1000"))
    a, b = result.params["a"], result.params["b"]
    np.testing.assert_allclose(result.predict([1e3, 1e6]), [a + 3 * b, a + 6 * b])
    lo, hi = result.band([1e4])
    truth = true_top1(4, 1000, 1e4)  # the band is about the mean, not the noisy points
    assert lo[0] <= truth <= hi[0] and hi[0] - lo[0] < 1.5
    text = repr(result)
    assert "loglinear" in text and "95% CI" in text and "b " in text
    html = result._repr_html_()
    assert html.count("<tr>") == 3 and "a + b * log10(x)" in html
    assert result.to_dict()["params"]["b"] == pytest.approx(b)


def test_fit_groups_gives_one_row_per_group_over_done_rows(df):
    fits = fit_groups(df)
    assert len(fits) == 2 * 2 * 2  # width x vocab x target (one protocol)
    assert not fits.duplicated(["width", "vocab", "target", "protocol"]).any()
    assert (fits.n == 9).all() and (fits.n_x == 3).all()
    assert list(fits.columns[:5]) == ["width", "vocab", "target", "protocol", "law"]
    assert {"a", "a_lo", "a_hi", "b", "b_lo", "b_hi", "r2", "rmse", "message"} <= set(fits.columns)
    covered = 0
    for row in fits.itertuples():
        truth = true_b(row.width, row.vocab)
        assert abs(row.b - truth) < 1.0
        # noise 0.5 on 9 points over 2 decades: the 95% interval is ~0.8 wide (OLS)
        assert 0.4 < row.b_hi - row.b_lo < 1.6, (row.b_lo, row.b_hi)
        covered += row.b_lo <= truth <= row.b_hi
    assert covered >= 6  # a 95% interval covers the true slope in most of 8 groups
    first = fits.iloc[0]
    assert predict_row(first, [10.0])[0] == pytest.approx(first.a + first.b)


def test_fit_groups_can_fit_seed_means(df):
    fits = fit_groups(df, by=("width", "vocab", "target"), mean_over_seeds=True, n_boot=20)
    assert (fits.n == 3).all()


def test_fit_groups_reports_a_group_it_cannot_fit(tmp_path):
    from analysis.fakes import make_sweep
    sweep = make_sweep(tmp_path, images=(10_000,), problems=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollectWarning)
        fits = fit_groups(collect(sweep, write=False), n_boot=10)
    assert len(fits) == 8 and fits.b.isna().all()
    assert fits.message.str.contains("2 distinct x").all()


def test_fit_groups_on_no_done_rows_is_an_empty_table(df):
    fits = fit_groups(df[df.status != "done"])
    assert fits.empty and "b_lo" in fits.columns


def test_fit_groups_names_a_missing_column(df):
    with pytest.raises(KeyError, match="nope"):
        fit_groups(df, by=("nope",))


def test_a_registered_law_plugs_into_fit_law_and_fit_groups(df):
    @register_law
    class Saturating(Law):
        """top1 = c - k * x**-alpha, solved by the generic least squares."""
        name = "test_saturating"
        params = ("c", "k", "alpha")
        formula = "c - k * x**-alpha"

        def f(self, x, theta):
            c, k, alpha = theta
            return c - k * np.asarray(x, float) ** -alpha

        def initial(self, x, y):
            return np.array([y.max() + 5.0, 50.0, 0.2])

        def bounds(self, x=None, y=None):
            return np.array([0.0, 0.0, 0.0]), np.array([200.0, 1e4, 2.0])

    try:
        x = np.repeat([1e3, 1e4, 1e5, 1e6], 2)
        y = 80 - 120 * x ** -0.25 + np.random.default_rng(0).normal(0, 0.05, len(x))
        result = fit_xy(x, y, law="test_saturating", n_boot=30)
        assert result.params["alpha"] == pytest.approx(0.25, abs=0.03)
        fits = fit_groups(df, law="test_saturating", n_boot=0)
        assert {"c", "k_lo", "alpha_hi"} <= set(fits.columns) and len(fits) == 8
        assert isinstance(get_law("test_saturating"), Saturating)
    finally:
        LAWS.pop("test_saturating", None)


def test_unknown_law_names_the_closest_registered_one():
    with pytest.raises(KeyError, match="did you mean 'loglinear'"):
        get_law("loglinaer")


def test_fit_law_drops_rows_without_y():
    df = pd.DataFrame({"dataset_images": [1e3, 1e4, 1e5, 1e6], "top1": [10.0, 20.0, 30.0, None]})
    result = fit_law(df, n_boot=0)
    assert result.n == 3 and result.params["b"] == pytest.approx(10.0)
