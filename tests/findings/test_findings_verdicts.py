"""The verdict machinery on hand-built results tables: every verdict of every finding is
reachable, intervals are computed over seeds (not rows), and the config is strict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.findings import FAILS, HOLDS, NOT_ENOUGH, findings, paired, seed_bootstrap
from analysis.findings_config import (
    DEFAULT_PATH,
    FindingsConfig,
    FindingsConfigError,
    load_findings_config,
)

FAST = {"n_boot": 400}


def row(**kw) -> dict:
    base = dict(sweep="t", status="done", arch="resnext", depth=11, width=4, cardinality=8,
                base_width=16, dataset_images=1000, vocab="all", resample="natural",
                label_noise=0.0, seed=0, images_seen=8000, target="fine", protocol="linear",
                top1=math.nan)
    base.update(kw)
    base["run_id"] = "-".join(f"{base[k]}" for k in ("width", "dataset_images", "vocab",
                                                     "resample", "label_noise", "seed"))
    return base


def table(seeds=(0, 1, 2), widths=((4, 5.0), (16, 9.0)), sizes=(1000, 4000, 16000),
          seed_sd=2.0, noise=0.3, vocab_gain=3.0, matched_gain=0.5, sqrt_gain=2.0,
          noise_cost=(0.5, 4.0), finetune_gain=None, rng_seed=0) -> pd.DataFrame:
    """A sweep's results with known effects; every seed shifts all its runs together."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for s in seeds:
        off = rng.normal(0, seed_sd)

        def top1(base, off=off):
            return base + off + rng.normal(0, noise)
        for w, b in widths:
            for n in sizes:
                rows.append(row(width=w, dataset_images=n, seed=s,
                                top1=top1(20 + b * np.log10(n / 1000))))
        w, n = widths[-1][0], sizes[1]
        clean = 20 + widths[-1][1] * np.log10(n / 1000)
        rows.append(row(width=w, dataset_images=n, seed=s, vocab="100",
                        top1=top1(clean - vocab_gain)))
        for vocab, gain in (("all", 0.0), ("matched:coarse", matched_gain)):
            rows.append(row(width=w, dataset_images=n, seed=s, vocab=vocab, target="coarse",
                            top1=top1(40 + gain)))
        for scheme, gain in (("sqrt", sqrt_gain), ("uniform", -1.0)):
            rows.append(row(width=w, dataset_images=n, seed=s, resample=scheme,
                            top1=top1(clean + gain)))
        for p, cost in zip((0.1, 0.25), noise_cost):
            rows.append(row(width=w, dataset_images=n, seed=s, label_noise=p,
                            top1=top1(clean - cost)))
        if finetune_gain is not None:
            for proto, gain in (("linear", 0.0), ("finetune", finetune_gain)):
                rows.append(row(width=w, dataset_images=n, seed=s, target="novel",
                                protocol=proto, top1=top1(15 + gain)))
    return pd.DataFrame(rows)


def test_every_finding_holds_on_a_table_built_to_show_it():
    result = findings(table(finetune_gain=5.0), FAST)
    assert result.verdicts == {i: HOLDS for i in range(1, 7)}, result
    assert result[1].parts[1].effect == pytest.approx(9.0, abs=0.5)
    assert result[2].effect == pytest.approx(4.0, abs=0.6)
    lo, hi = result[2].interval
    assert lo < result[2].effect < hi
    # and as wide as theory says: the t interval of the per-seed slope differences (a
    # balanced design: the pooled slope is the mean of the seeds' slopes)
    effects = per_seed_slope_difference(table(finetune_gain=5.0), wide=16, narrow=4)
    assert result[2].effect == pytest.approx(effects.mean(), abs=1e-9)
    assert hi - lo == pytest.approx(t_width(effects), rel=0.25)


def _main_grid(df: pd.DataFrame, target: str = "fine") -> pd.DataFrame:
    keep = ((df["vocab"].to_numpy() == "all") & (df["resample"].to_numpy() == "natural")
            & (df["label_noise"].to_numpy() == 0) & (df["target"].to_numpy() == target))
    return df[keep]


def per_seed_slope_difference(df: pd.DataFrame, wide: int, narrow: int) -> np.ndarray:
    """b(wide) - b(narrow) fitted on each seed's own runs."""
    out = []
    for _, runs in _main_grid(df).groupby("seed"):
        slope = {w: np.polyfit(np.log10(g["dataset_images"].astype(float)),
                               g["top1"].astype(float), 1)[0] for w, g in runs.groupby("width")}
        out.append(slope[wide] - slope[narrow])
    return np.asarray(out)


def t_width(effects: np.ndarray, level: float = 0.95) -> float:
    """Width of the t interval of the mean of per-seed effects."""
    n = len(effects)
    return 2 * stats.t.ppf(0.5 + level / 2, n - 1) * effects.std(ddof=1) / math.sqrt(n)


@pytest.mark.parametrize("number, kwargs", [
    (1, {"widths": ((4, 0.0), (16, 9.0))}),          # the narrow width does not grow
    (2, {"widths": ((4, 9.0), (16, 5.0))}),          # the wider one gains less
    (3, {"vocab_gain": -2.0}),                        # a small vocabulary is better
    (3, {"matched_gain": -4.0}),                      # matched loses more than the tolerance
    (4, {"sqrt_gain": -2.0}),                         # both schemes lose to natural
    (5, {"noise_cost": (6.0, 8.0)}),                  # 10% costs a lot
    (5, {"noise_cost": (2.0, 1.0)}),                  # 25% costs no more than 10%
    (6, {"finetune_gain": -3.0}),                     # fine-tuning loses to the probe
])
def test_a_finding_built_to_fail_does_not_hold(number, kwargs):
    result = findings(table(**kwargs), FAST)
    assert result.verdicts[number] == FAILS, result
    skip = (number, 6, 2 if number == 1 else 0)
    others = {n: v for n, v in result.verdicts.items() if n not in skip}
    assert set(others.values()) == {HOLDS}, result


@pytest.mark.parametrize("number, kwargs, drop", [
    (1, {"sizes": (1000, 4000)}, None),                  # two sizes per width
    (1, {"seeds": (0, 1)}, None),                        # two seeds
    (2, {"widths": ((16, 9.0),)}, None),                 # one width
    (3, {}, lambda d: d[d.vocab != "100"]),              # one vocabulary on fine
    (3, {}, lambda d: d[d.target != "coarse"]),          # no coarse target
    (4, {}, lambda d: d[d["resample"] == "natural"]),       # never resampled
    (5, {}, lambda d: d[~np.isclose(d.label_noise, 0.25)]),  # no 25% runs
    (6, {}, None),                                       # no finetune protocol at all
    (6, {"finetune_gain": 5.0}, lambda d: d[~((d.protocol == "finetune") & (d.seed > 0))]),
])
def test_missing_runs_give_not_enough_runs(number, kwargs, drop):
    df = table(**kwargs)
    df = drop(df) if drop else df
    result = findings(df, FAST)
    assert result.verdicts[number] == NOT_ENOUGH, result
    untested = [p for p in result[number].parts  # parts with no result say what is missing
                if p.passed is None and (p.rule or not math.isfinite(p.effect))]
    assert untested and all(p.note for p in untested), result  # each says what is missing
    assert result[number].meaning.startswith(("Needs", "Not enough")), result[number].meaning


def test_resampling_fails_when_the_only_scheme_run_fails():
    """A sweep that runs sqrt but never uniform is judged on sqrt: the absent scheme is
    not 'not enough runs' (it was the verdict of the world-19 record before this rule)."""
    df = table(sqrt_gain=-2.0)
    result = findings(df[df["resample"] != "uniform"], FAST)
    assert result.verdicts[4] == FAILS, result
    assert [p.seeds for p in result[4].parts] == [3, 0]
    assert "sqrt" in result[4].meaning and "nan" not in result[4].meaning
    held = findings(table()[lambda d: d["resample"] != "uniform"], FAST)
    assert held.verdicts[4] == HOLDS
    few = df[(df["resample"] != "uniform") & ~((df["resample"] == "sqrt") & (df.seed > 0))]
    assert findings(few, FAST).verdicts[4] == NOT_ENOUGH  # sqrt run, but on one seed


def test_unfinished_runs_and_other_protocols_are_not_counted():
    df = table(finetune_gain=5.0)
    df.loc[df.target == "novel", "status"] = "failed"
    assert findings(df, FAST).verdicts[6] == NOT_ENOUGH


def test_a_width_with_too_few_sizes_is_shown_but_not_judged():
    df = table()
    df = pd.concat([df, df[(df.width == 16) & (df.dataset_images == 4000)].assign(width=8)])
    result = findings(df, FAST)
    assert result.verdicts[1] == HOLDS
    assert [(p.label.split(",")[0], p.rule) for p in result[1].parts] == [
        ("b (width 4)", "lower bound > 0"), ("b (width 8)", ""),
        ("b (width 16)", "lower bound > 0"), ("c (width 4)", ""), ("c (width 16)", "")]


def _curved(bend: float) -> pd.DataFrame:
    """Four sizes over two decades; top1 gains `bend` x u^2 on top of the line."""
    df = table(sizes=(250, 1000, 5000, 25000), seeds=(0, 1, 2, 3))
    u = np.log10(df["dataset_images"] / 1000.0)
    grid = df["vocab"].eq("all") & df["resample"].eq("natural") & df["label_noise"].eq(0)
    df.loc[grid & df.target.eq("fine"), "top1"] += bend * u ** 2
    return df


def test_curvature_is_measured_beside_the_slope_and_not_judged():
    straight, bent = findings(_curved(0.0), FAST)[1], findings(_curved(-4.0), FAST)[1]
    curv = {f: [p for p in r.parts if p.label.startswith("c (")] for f, r in
            (("straight", straight), ("bent", bent))}
    assert [p.rule for p in curv["bent"]] == ["", ""]         # shown, never the verdict
    for p in curv["straight"]:
        assert p.lo < 0 < p.hi, p
    for p in curv["bent"]:                                     # -4 per (10x)^2 is found
        assert p.hi < 0 and p.effect == pytest.approx(-4.0, abs=1.0), p
    assert "no curvature is detected" in straight.meaning
    assert "Not quite log-linear" in bent.meaning and "flattening" in bent.meaning


def _with_control(random_gain: float, all_gain: float) -> pd.DataFrame:
    """Vocabularies 16 (most frequent), random:16 and all on fine, 3 seeds."""
    df = table()
    w, n = 16, 4000
    base = df[(df.width == w) & (df.dataset_images == n) & df.vocab.eq("all")
              & df.target.eq("fine") & df["resample"].eq("natural") & df.label_noise.eq(0)]
    extra = [base.assign(vocab="16", top1=base.top1 - all_gain),
             base.assign(vocab="random:16", top1=base.top1 - all_gain + random_gain)]
    return pd.concat([df[~df.vocab.eq("100")], *extra], ignore_index=True)


def test_the_random_vocabulary_control_separates_more_tags_from_which_tags():
    # All of the gain over the 16 most frequent tags is "which tags": a random 16 does as
    # well as all of them, so "more tags" does not hold; the same gain with a random 16 no
    # better than the top 16 holds.
    which = findings(_with_control(random_gain=6.0, all_gain=6.0), FAST)[3]
    more = findings(_with_control(random_gain=0.0, all_gain=6.0), FAST)[3]
    assert more.verdict == HOLDS and which.verdict == FAILS
    assert which.parts[0].label.startswith("top1(vocab all) - top1(vocab random:16)")
    shown = {p.label.split(" on ")[0]: p for p in which.parts}
    assert shown["top1(vocab random:16) - top1(vocab 16)"].effect == pytest.approx(6, abs=1)
    assert shown["top1(vocab random:16) - top1(vocab 16)"].rule == ""
    assert "random beat the 16 most frequent" in which.meaning
    assert "are not told apart" in findings(_with_control(0.0, 6.0), FAST)[3].meaning
    # without the control in the config, the old rule (all - 16) is judged
    old = findings(_with_control(random_gain=6.0, all_gain=6.0),
                   {**FAST, "vocabulary": {"control": "none"}})[3]
    assert old.verdict == HOLDS and old.parts[0].label.startswith("top1(vocab all) - "
                                                                  "top1(vocab 16)")


def test_finetune_gain_is_shown_on_every_target_and_compared_from_the_numbers():
    df = table(finetune_gain=5.0)
    novel = df[df.target.eq("novel")]
    fine = novel.assign(target="fine", top1=novel.top1 + 10
                        + np.where(novel.protocol.eq("finetune"), 2.0, 0.0))
    result = findings(pd.concat([df, fine], ignore_index=True), FAST)[6]
    assert result.verdict == HOLDS and result.parts[0].label.endswith("on novel")
    other = result.parts[1]
    assert other.label == "top1(finetune) - top1(linear) on fine" and other.rule == ""
    assert other.effect == pytest.approx(7.0, abs=0.6)  # 5 + 2
    assert "2.0 points more than on novel" in result.meaning


def test_finding_one_fails_when_any_width_fails_even_if_another_lacks_seeds():
    df = table(widths=((4, 0.0), (16, 9.0), (32, 12.0)))
    df = df[~((df.width == 32) & (df.seed > 0))]
    result = findings(df, FAST)
    assert result.verdicts[1] == FAILS
    assert [p.passed for p in result[1].parts if p.rule or p.label.startswith("b (")] == [
        False, True, None]


# --------------------------------------------------------------------------- the bootstrap

def _mean(t):
    return float(t["diff"].mean())


def test_interval_does_not_shrink_when_rows_are_repeated_within_seeds():
    """Row resampling would treat 10 copies of a seed as 10 observations (interval ~3x
    narrower); resampling seeds gives the same interval."""
    per_seed = pd.DataFrame({"seed": [0, 1, 2, 3], "diff": [1.0, 4.0, 2.5, 0.5]})
    copies = pd.concat([per_seed] * 10, ignore_index=True)
    once = seed_bootstrap(per_seed, _mean, n_boot=1000)
    ten = seed_bootstrap(copies, _mean, n_boot=1000)
    assert once[3] == ten[3] == 4
    assert ten[1:3] == pytest.approx(once[1:3], abs=1e-9)


def test_interval_matches_the_t_interval_of_per_seed_effects():
    rng = np.random.default_rng(1)
    effects = rng.normal(3.0, 2.0, size=5)
    est, lo, hi, _ = seed_bootstrap(pd.DataFrame({"seed": range(5), "diff": effects}), _mean,
                                    n_boot=4000)
    half = stats.t.ppf(0.975, 4) * effects.std(ddof=1) / math.sqrt(5)
    assert est == pytest.approx(effects.mean())
    assert hi - lo == pytest.approx(2 * half, rel=0.25)


def test_a_shared_seed_offset_cancels_in_the_slope_interval():
    """Seeds shift every size together by +-10 points; a bootstrap that keeps each seed's
    runs together sees exact slopes, one that resampled rows would not."""
    tight = findings(table(seed_sd=10.0, noise=0.05), FAST)[1].parts[0]
    assert tight.hi - tight.lo < 0.5, tight
    loose = findings(table(seed_sd=0.0, noise=3.0), FAST)[1].parts[0]
    assert loose.hi - loose.lo > 4 * (tight.hi - tight.lo), loose


def test_pairs_are_matched_on_every_other_axis():
    df = table()
    pairs = paired(df, "resample", "sqrt", "natural", "fine", "linear",
                   {"vocab": "all", "label_noise": 0.0})
    assert len(pairs) == 3 and set(pairs.width) == {16} and set(pairs.dataset_images) == {4000}
    assert pairs["diff"].mean() == pytest.approx(2.0, abs=0.6)


def test_one_seed_has_no_interval():
    est, lo, hi, n = seed_bootstrap(pd.DataFrame({"seed": [0, 0], "diff": [1.0, 2.0]}), _mean)
    assert n == 1 and est == 1.5 and math.isnan(lo) and math.isnan(hi)


def test_result_prints_as_a_table_and_serialises():
    result = findings(table(), FAST)
    text = repr(result)
    assert "95% CI" in text and "holds" in text and "not enough runs" in text
    assert "<table" in result._repr_html_()
    doc = result.to_dict()
    assert [f["number"] for f in doc["findings"]] == [1, 2, 3, 4, 5, 6]
    assert doc["findings"][5]["verdict"] == NOT_ENOUGH
    assert result.summary().count("\n") == 5


# --------------------------------------------------------------------------- the config

def test_shipped_config_is_the_default():
    assert DEFAULT_PATH.is_file()
    assert load_findings_config(DEFAULT_PATH) == FindingsConfig()


@pytest.mark.parametrize("bad, message", [
    ({"loglinear": {"min_slop": 0}},
     "unknown field 'loglinear.min_slop': did you mean 'loglinear.min_slope'?"),
    ({"level": "high"}, "level='high' is invalid: use a number"),
    ({"label_noise": {"low": 0.3}}, "label_noise.low=0.3 is invalid: use clean < low < high"),
    ({"min_seeds": 1}, "min_seeds=1 is invalid"),
    ({"resampling": {"schemes": []}}, "resampling.schemes=[] is invalid"),
    ({"label_noise": {"little_in": "pct"}},
     "label_noise.little_in='pct' is invalid: use images or points"),
    ({"label_noise": {"little_images": 1.5}}, "label_noise.little_images=1.5 is invalid"),
    ({"vocabulary": "all"}, "vocabulary='all' is invalid: use a mapping"),
])
def test_bad_config_fields_are_one_line_errors(bad, message):
    with pytest.raises(FindingsConfigError) as info:
        load_findings_config(bad)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FindingsConfigError, match="no such findings config"):
        load_findings_config(tmp_path / "nope.yaml")


def test_thresholds_from_the_config_decide_the_verdict():
    df = table(noise_cost=(1.0, 6.0))
    assert findings(df, FAST).verdicts[5] == HOLDS
    # cost 1 point against a slope of 9 points per 10x: worth losing 1 - 10^(-1/9) = 0.23
    assert findings(df, {**FAST, "label_noise": {"little_images": 0.1}}).verdicts[5] == FAILS
    points = {"little_in": "points", "little": 1.0}
    assert findings(df, {**FAST, "label_noise": points}).verdicts[5] == FAILS
    assert findings(df, {**FAST, "label_noise": {**points, "little": 3.0}}).verdicts[5] == HOLDS
    assert findings(df, {**FAST, "loglinear": {"min_slope": 20.0}}).verdicts[1] == FAILS


def test_slopes_are_fitted_on_the_sizes_every_width_shares():
    # a larger set run at the wide width only (a resampling grid's 192k images, below its
    # line): it must not bend that width's slope, or finding 2 compares unlike ranges
    df = table()
    base = findings(df, FAST)
    extra = [row(width=16, dataset_images=192000, seed=s, top1=20.0) for s in (0, 1, 2)]
    result = findings(pd.concat([df, pd.DataFrame(extra)], ignore_index=True), FAST)
    for n in (1, 2):
        assert [p.effect for p in result[n].parts] == pytest.approx(
            [p.effect for p in base[n].parts]), (result[n], base[n])
    assert result.verdicts[2] == HOLDS
    # with one width there is nothing to compare: all its sizes are fitted
    alone = findings(pd.concat([df[df.width == 16], pd.DataFrame(extra)]), FAST)
    slope16 = next(p for p in base[1].parts if p.label.startswith("b (width 16)"))
    assert alone[1].parts[0].effect < slope16.effect - 1.0


def test_a_seed_without_every_size_does_not_count_toward_the_slopes():
    # another grid's extra seed run at one size only (a noise grid's 5th clean seed) adds no
    # slope; counted, it would make 4 seeds look like 5 and narrow the t interval
    df = table(seeds=(0, 1, 2, 3))
    base = findings(df, FAST)
    extra = pd.DataFrame([row(width=16, dataset_images=16000, seed=4, top1=60.0)])
    result = findings(pd.concat([df, extra], ignore_index=True), FAST)
    for n in (1, 2):
        assert [p.seeds for p in result[n].parts if p.rule] == [
            p.seeds for p in base[n].parts if p.rule]
        assert [v for p in result[n].parts for v in (p.effect, p.lo, p.hi)] == pytest.approx(
            [v for p in base[n].parts for v in (p.effect, p.lo, p.hi)])
    assert max(p.seeds for p in result[2].parts) == 4


def test_list_valued_axes_are_matched_like_any_other_column():
    # a sweep axis whose values are lists (transfer.targets: [[fine, coarse, novel]]) reaches
    # the results table as list cells: pairing and grouping must not trip over them
    df = table().assign(**{"transfer.targets": [["fine", "coarse"]] * len(table())})
    result = findings(df, FAST)
    assert [result.verdicts[n] for n in (1, 2, 3, 4, 5)] == [HOLDS] * 5


def test_a_results_table_read_back_from_parquet_gives_the_same_verdicts(tmp_path):
    # pd.read_parquet returns list cells as numpy arrays (results.parquet read by hand)
    df = table().assign(**{"transfer.targets": [["fine", "coarse"]] * len(table())})
    df.to_parquet(tmp_path / "results.parquet")
    back = pd.read_parquet(tmp_path / "results.parquet")
    assert isinstance(back["transfer.targets"].iloc[0], np.ndarray)
    assert findings(back, FAST).table().equals(findings(df, FAST).table())


@pytest.mark.parametrize("slope", [9.0, 18.0])
def test_noise_cost_is_read_in_images_off_the_slope_at_its_width(slope):
    # the same 3-point cost is worth more images on a flatter curve: 1 - 10^(-3 / b)
    df = table(widths=((4, 5.0), (16, slope)), noise_cost=(3.0, 8.0), seeds=range(5),
               noise=0.1)
    result = findings(df, FAST)[5]
    share = result.parts[0]
    assert share.label.startswith("images lost") and share.rule == "upper bound < 0.5"
    assert share.effect == pytest.approx(1 - 10 ** (-3.0 / slope), abs=0.03)
    assert share.lo < share.effect < share.hi
    # as wide as the seeds' own shares scatter (each read off the true slope): a collapsed
    # interval fails here
    noisy = df[(df["label_noise"].to_numpy() == 0.1)].set_index("seed")["top1"]
    clean = _main_grid(df).query("width == 16 and dataset_images == 4000").set_index("seed")
    shares = (1 - 10 ** (-(clean["top1"] - noisy) / slope)).to_numpy()
    assert 0.5 * t_width(shares) < share.hi - share.lo < 2.5 * t_width(shares)
    assert result.verdict == (FAILS if slope == 9.0 else HOLDS)  # 0.54 vs 0.32 of the images
    cost = next(p for p in result.parts if p.label.startswith("cost(10%)"))
    assert cost.rule == "" and cost.effect == pytest.approx(3.0, abs=0.3)  # shown, not judged


def test_noise_without_a_curve_at_its_width_cannot_be_read_in_images():
    df = table(widths=((16, 9.0),), sizes=(1000, 4000))  # two sizes: no curve to read
    result = findings(df, FAST)[5]
    assert result.verdict == NOT_ENOUGH and "no curve of finding 1" in result.parts[0].note
    assert findings(df, {**FAST, "label_noise": {"little_in": "points"}}).verdicts[5] == HOLDS


def test_other_vocabularies_are_shown_against_the_largest_but_not_judged():
    df = table()
    middle = df[df.vocab == "100"].assign(vocab="400", top1=lambda d: d.top1 + 2.0)
    middle["run_id"] += "-v400"
    coarse_only = df[df.vocab == "100"].assign(vocab="matched:coarse",
                                               top1=lambda d: d.top1 + 5.0)
    coarse_only["run_id"] += "-vm"
    result = findings(pd.concat([df, middle, coarse_only]), FAST)[3]
    assert result.verdict == HOLDS  # judged on all vs the smallest (100) only
    shown = {p.label: p for p in result.parts if not p.rule}
    assert shown["top1(vocab all) - top1(vocab 400) on fine"].effect == pytest.approx(1.0,
                                                                                     abs=0.5)
    assert shown["top1(vocab all) - top1(vocab matched:coarse) on fine"].effect == \
        pytest.approx(-2.0, abs=0.5)


def test_resampling_is_explained_by_the_measured_stream_when_runs_have_it():
    df = table()
    plain = findings(df, FAST)[4].meaning
    figures = {"natural": (900.0, 2.0, 0.06, 100.0, 2.0), "sqrt": (600.0, 3.0, 0.2, 98.0, 6.0),
               "uniform": (400.0, 4.5, 0.5, 95.0, 16.0)}
    for column, k in (("sampling_distinct", 0), ("sampling_repeats", 1),
                      ("sampling_tail_share", 2), ("sampling_tail_distinct", 3),
                      ("sampling_tail_repeats", 4)):
        df[column] = df["resample"].map(lambda r, k=k: figures[r][k])
    df["sampling_draws"], df["sampling_tail_images"] = 1800.0, 100.0
    explained = findings(df, FAST)[4].meaning
    assert explained.startswith(plain) and explained != plain
    assert "uniform shows 400 distinct images against natural's 900" in explained, explained
