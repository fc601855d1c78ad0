"""Worlds as replicates: runs on several worlds are judged over (world, seed) replicates
(pairs taken within a replicate, whole replicates resampled), so intervals include
world-to-world variation; a sweep on one world is judged over seeds exactly as before."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.collect import collect
from analysis.fakes import RESAMPLE_GAIN, make_sweep
from analysis.findings import NOT_ENOUGH, findings, paired
from tests.findings.test_findings_verdicts import FAST, table


def _on_worlds(df: pd.DataFrame, world_of) -> pd.DataFrame:
    return df.assign(data_seed=[world_of(s) for s in df["seed"]])


def test_one_world_is_judged_over_seeds_as_before():
    df = table()
    before = findings(df, FAST)
    after = findings(df.assign(data_seed=43), FAST)
    assert (before.unit, after.unit) == ("seed", "seed") and after.worlds == [43]
    assert after.to_dict()["findings"] == before.to_dict()["findings"]
    assert "world 43 only" in after.scope and "seeds" in after.table().columns


def test_worlds_crossed_with_seeds_count_each_world_seed_pair_as_a_replicate():
    """Seeds 0-2 on worlds 5 and 7: six replicates, each pair taken within one world. A
    bootstrap over seed numbers alone would merge seed 0 of world 5 with seed 0 of world 7
    (three units)."""
    df = pd.concat([table(rng_seed=1).assign(data_seed=5),
                    table(rng_seed=2).assign(data_seed=7)], ignore_index=True)
    result = findings(df, FAST)
    assert result.unit == "replicate" and result.worlds == [5, 7]
    sqrt = result[4].parts[0]
    assert sqrt.seeds == 6, sqrt
    assert "replicates" in result.table().columns
    assert "a random world of this generator (worlds 5, 7" in result.scope
    doc = result.to_dict()
    assert (doc["unit"], doc["worlds"]) == ("replicate", [5, 7])


def test_pairs_are_never_taken_across_worlds():
    """sqrt runs on worlds 100+s, natural runs on worlds 200+s: same seeds, no pair."""
    df = table()
    df = df.assign(data_seed=[(100 if r == "sqrt" else 200) + s
                              for r, s in zip(df["resample"], df["seed"])])
    pairs = paired(df, "resample", "sqrt", "natural", "fine", "linear",
                   {"vocab": "all", "label_noise": 0.0})
    assert len(pairs) == 0
    assert findings(df, FAST)[4].parts[0].note == "no matching runs"


def test_notes_say_replicates_when_the_unit_is_a_replicate():
    df = _on_worlds(table(seeds=(0, 1)), lambda s: 100 + s)
    result = findings(df, FAST)
    assert result[6].verdict == NOT_ENOUGH
    notes = " ".join(p.note for f in result.findings for p in f.parts)
    assert "2 replicate(s) with complete data, needs 3" in notes and "seed" not in notes


def _sqrt_interval(tmp_path, world_sd: float, draw: int):
    sweep = make_sweep(tmp_path / f"{world_sd}-{draw}", widths=(16,), vocabs=("all",),
                       images=(1000,), targets=("fine",), ablations=True, problems=False,
                       replicates=6, world_sd=world_sd, rng_seed=draw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = findings(collect(sweep, write=False), FAST)
    assert result.unit == "replicate" and result.worlds == list(range(100, 106))
    part = result[4].parts[0]
    assert part.seeds == 6
    return part.lo, part.hi


@pytest.mark.slow  # 12 simulated sweeps: ~6 s
def test_world_to_world_variation_widens_the_replicate_interval(tmp_path):
    """The same fabricated effect (sqrt +5 points over natural at the generator level),
    six (world, seed) replicates, per-run noise sd 0.5: with worlds that differ (each
    world's sqrt gain drawn N(5, 2)) the replicate interval is much wider than with
    identical worlds, and still covers the generator-level 5 in most draws."""
    truth = RESAMPLE_GAIN["sqrt"]
    off = [_sqrt_interval(tmp_path, 0.0, d) for d in range(12)]
    on = [_sqrt_interval(tmp_path, 2.0, d) for d in range(12)]
    width_off = np.mean([hi - lo for lo, hi in off])
    width_on = np.mean([hi - lo for lo, hi in on])
    assert width_on > 2 * width_off, (width_on, width_off)
    covered = sum(lo < truth < hi for lo, hi in on)
    assert covered >= 9, on  # nominal 95%: 12 of 12 expected, 9 leaves room for chance


@pytest.mark.parametrize("world_sd", [0.0, 2.0])
def test_fake_replicate_sweeps_tie_each_world_to_its_seed(tmp_path, world_sd):
    sweep = make_sweep(tmp_path, widths=(4,), vocabs=("all",), images=(1000, 10000),
                       targets=("fine",), problems=False, replicates=3, world_sd=world_sd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = collect(sweep, write=False)
    assert set(zip(df["seed"], df["data_seed"])) == {(0, 100), (1, 101), (2, 102)}
    assert all(r.endswith(f"-r{s}") for r, s in zip(df["run_id"], df["seed"]))

