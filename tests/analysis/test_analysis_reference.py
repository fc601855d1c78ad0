"""The fitter reproduces Besiroglu et al.'s replication of the Chinchilla fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.reference import BESIROGLU, chinchilla_check, reference_dir

POINTS = reference_dir() / "chinchilla_points.csv"


def test_reference_points_ship_inside_the_package():
    # the clone alone must pass: the points travel with the package, never from beside it
    assert POINTS.is_file() and Path(__file__).resolve().parents[2] in POINTS.resolve().parents
    assert len(POINTS.read_text().splitlines()) == 246  # header + 245 points


@pytest.fixture(scope="module")
def check():
    if not POINTS.is_file():
        pytest.fail(f"{POINTS.resolve()} is missing", pytrace=False)
    return chinchilla_check(POINTS, n_boot=20, seed=0)


def test_chinchilla_fit_matches_the_published_replication(check):
    fit, table = check
    assert fit.n == 240 and fit.loss == "huber" and fit.diagnostics["method"] == "L-BFGS-B"
    for row in table.itertuples():
        assert row.ok, f"{row.param}: {row.ours:.5g} vs {row.published} ({row.rel_diff:.2%})"
    assert set(table.param) == set(BESIROGLU)


def test_chinchilla_bootstrap_intervals_hold_the_estimates(check):
    fit, table = check
    for row in table.itertuples():
        assert row.lo < row.ours < row.hi
