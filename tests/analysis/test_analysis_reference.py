"""The fitter reproduces Besiroglu et al.'s replication of the Chinchilla fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.reference import BESIROGLU, chinchilla_check

REPO = Path(__file__).resolve().parents[2]
POINTS = REPO / ".." / "shared" / "reference" / "chinchilla_points.csv"


def test_reference_points_are_present_beside_the_repository():
    # a missing copy of shared/ must fail loudly (never skip), in CI and locally
    assert POINTS.is_file(), (f"{POINTS.resolve()} is missing: the Chinchilla check needs "
                              "shared/reference/ beside the repository")


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
