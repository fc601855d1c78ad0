"""bench/probe_by_family.py splits a probe's errors by shape family (data/README.md quotes
it for finding 3): the split itself, on predictions whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.bench_scripts import load_bench_script


def _module():
    return load_bench_script("probe_by_family")


def test_family_split_counts_hits_family_hits_and_hits_within_the_family():
    family = np.array([0, 0, 1, 1])
    true = np.array([0, 1, 2, 3])
    pred = np.array([0, 0, 2, 1])      # right, same family, right, other family
    r = _module().family_split(pred, true, family)
    assert r["top1"] == pytest.approx(50.0)
    assert r["family_right"] == pytest.approx(75.0)
    assert r["top1_given_family"] == pytest.approx(200 / 3)
