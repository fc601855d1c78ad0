"""bench/seed_power.py estimates how often a finding's 95% interval clears its bar at n seeds
(records/history.md, "Power across the records", quotes it): checked against what a t interval
must do, by simulation, and on the records file it ships with."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tests.helpers.bench_scripts import load_bench_script


def _module():
    return load_bench_script("seed_power")


def test_pass_chance_of_a_null_effect_is_the_one_sided_error_rate():
    # no effect and the bar at 0: a 95% two-sided interval clears it 2.5% of the time
    for n in (3, 6, 30):
        chance = _module().pass_chance([0.0], [0.0], sd=1.0, n=n, side="lower")
        assert chance == pytest.approx(0.025, abs=1e-6)


def test_pass_chance_matches_a_simulation_of_t_intervals():
    mod = _module()
    rng = np.random.default_rng(0)
    mu, sd, n = 1.5, 2.0, 6
    draws = rng.normal(mu, sd, size=(20000, n))
    lower = draws.mean(1) - stats.t.ppf(0.975, n - 1) * draws.std(1, ddof=1) / np.sqrt(n)
    simulated = float((lower > 0).mean())   # 0.32; a known-sd normal shortcut gives 0.23
    assert mod.pass_chance([mu], [0.0], sd, n, "lower") == pytest.approx(simulated, abs=0.01)


def test_upper_bars_pass_when_the_effect_is_well_below_them():
    mod = _module()
    assert mod.pass_chance([1.0], [5.0], sd=1.0, n=6, side="upper") > 0.99
    assert mod.pass_chance([5.0], [5.0], sd=1.0, n=6, side="upper") < 0.05


def test_shipped_records_give_more_power_with_more_seeds(capsys):
    mod = _module()
    summary = mod.summarise(mod.read_effects(mod.DEFAULT_EFFECTS))
    assert set(summary) == set(mod.QUANTITIES)
    for q, s in summary.items():
        # uniform resampling entered the records with world 41; the rest span 19-43
        assert len(s["worlds"]) >= (1 if q == "uniform_minus_natural" else 5) and s["sd"] > 0
        chances = [mod.pass_chance(s["means"], s["bars"], s["sd"], n, s["side"])
                   for n in mod.SEED_COUNTS]
        assert all(a < b for a, b in zip(chances, chances[1:])), s["label"]
    mod.main(["--seeds", "6", "3", "6", "0", "6", "3"])
    out = capsys.readouterr().out
    assert "all 5 run clear together at seeds [6, 3, 6, 0, 6, 3]:" in out


def test_joint_chance_leaves_out_quantities_a_design_does_not_run(capsys):
    # 0 seeds = not run: the joint chance is the product over the quantities that are run,
    # so adding a scheme the design never runs must not lower it
    mod = _module()
    summary = mod.summarise(mod.read_effects(mod.DEFAULT_EFFECTS))
    seeds = dict(zip(mod.QUANTITIES, [6, 3, 0, 6, 6, 4]))
    expected = math.prod(mod.pass_chance(s["means"], s["bars"], s["sd"], seeds[q], s["side"])
                         for q, s in summary.items() if seeds[q])
    mod.main(["--seeds"] + [str(n) for n in seeds.values()])
    out = capsys.readouterr().out
    assert f"all 5 run clear together at seeds [6, 3, 0, 6, 6, 4]: {expected:.2f}" in out
    with pytest.raises(SystemExit):
        mod.main(["--seeds", "6", "3", "1", "6", "6", "4"])   # one seed gives no interval
    with pytest.raises(SystemExit):
        mod.main(["--seeds"] + ["0"] * len(mod.QUANTITIES))  # a design that runs nothing
    assert "a design runs at least one quantity" in capsys.readouterr().err


def test_ten_percent_noise_bar_is_losing_half_the_images_on_each_worlds_curve():
    # 10% noise "costs little" when it costs less than halving the images: on a curve of
    # b points per 10x that is b * log10(2) points, each world with its own b
    mod = _module()
    values = mod.read_effects(mod.DEFAULT_EFFECTS)
    s = mod.summarise(values)["cost10"]
    assert s["side"] == "upper"
    for world, bar in zip(s["worlds"], s["bars"]):
        assert bar == pytest.approx(math.log10(2) * values["b16"][world][0])
