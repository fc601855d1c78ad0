"""Two promises of every verdict, each tested without luck: a comparison with fewer seeds
than `min_seeds` gets no verdict (whatever its interval says), and a verdict is read off
the interval's bound, never off the point estimate."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.findings import FAILS, HOLDS, NOT_ENOUGH, findings
from tests.findings.test_findings_verdicts import FAST, table


def test_two_seeds_give_no_verdict_for_any_finding():
    """Two seeds give every comparison a finite interval: only `min_seeds` (3) withholds
    the verdict. The same table judged with min_seeds=2 does get verdicts, so it is the
    check and not the data that decides."""
    two = table(seeds=(0, 1), finetune_gain=5.0, noise=0.05, seed_sd=0.5)
    # finding 5 in points: in images it needs finding 1's curve, which two seeds lack
    config = {**FAST, "label_noise": {"little_in": "points"}}
    withheld = findings(two, config)
    assert withheld.verdicts == {n: NOT_ENOUGH for n in range(1, 7)}, withheld
    for number in range(3, 7):
        judged = [p for p in withheld[number].parts if p.rule]
        assert judged and all(p.passed is None for p in judged), withheld[number]
        assert all(np.isfinite([p.lo, p.hi]).all() for p in judged)  # an interval exists
        assert any("2 seed(s) with complete data, needs 3" in p.note for p in judged)
    allowed = findings(two, {**config, "min_seeds": 2})
    assert all(allowed.verdicts[n] in (HOLDS, FAILS) for n in range(3, 7)), allowed


def _gains(per_seed: list[float], scheme: str = "sqrt"):
    """The resampling comparison with exact per-seed gains of `scheme` over natural (no
    noise, no seed offset): its estimate is their mean, whatever the bootstrap draws."""
    df = table(seeds=range(len(per_seed)), noise=0.0, seed_sd=0.0, sqrt_gain=0.0)
    rows = df["resample"].to_numpy() == scheme
    df.loc[rows, "top1"] += np.asarray(per_seed)[df.loc[rows, "seed"].to_numpy()]
    uniform = df["resample"].to_numpy() == "uniform"
    df.loc[uniform, "top1"] -= 5.0  # uniform clearly loses on every seed
    return df


@pytest.mark.parametrize("boot_seed", [0, 1, 2])
def test_a_positive_estimate_whose_interval_reaches_below_zero_does_not_hold(boot_seed):
    """Gains +4, -3, +2: the mean (+1) is above the threshold, but a seed lost 3 points;
    7 of the 27 equally likely seed draws have a negative mean, so every bootstrap puts
    the lower bound below 0, for any boot_seed. A verdict read off the estimate holds."""
    result = findings(_gains([4.0, -3.0, 2.0]), {**FAST, "boot_seed": boot_seed})[4]
    sqrt = result.parts[0]
    assert sqrt.effect == pytest.approx(1.0, abs=1e-9) and sqrt.lo < 0 < sqrt.effect
    assert sqrt.passed is False and result.verdict == FAILS, result
    # the same mean with seeds that agree: the bound clears 0 and it holds
    agreed = findings(_gains([1.2, 0.8, 1.0]), {**FAST, "boot_seed": boot_seed})[4]
    assert agreed.parts[0].effect == pytest.approx(1.0, abs=1e-9)
    assert agreed.parts[0].lo > 0 and agreed.verdict == HOLDS, agreed


@pytest.mark.parametrize("boot_seed", [0, 1, 2])
def test_an_upper_bound_rule_reads_the_upper_bound(boot_seed):
    """Label noise 'costs little' in points: cost(10%) per seed 1, 1, 4 (mean 2 < 3, the
    threshold) but its upper bound is above 3: not 'little'. Seeds that agree on 2 are."""
    config = {**FAST, "boot_seed": boot_seed, "label_noise": {"little_in": "points"}}

    def costs(per_seed):
        df = table(seeds=range(3), noise=0.0, seed_sd=0.0, noise_cost=(0.0, 6.0))
        rows = np.isclose(df["label_noise"].to_numpy(), 0.1)
        df.loc[rows, "top1"] -= np.asarray(per_seed)[df.loc[rows, "seed"].to_numpy()]
        return findings(df, config)[5]

    spread = costs([1.0, 1.0, 4.0])
    little = spread.parts[0]
    assert little.effect == pytest.approx(2.0, abs=1e-9) and little.hi > 3.0
    assert little.passed is False and spread.verdict == FAILS, spread
    agreed = costs([2.0, 2.1, 1.9])
    assert agreed.parts[0].hi < 3.0 and agreed.parts[0].passed is True, agreed
