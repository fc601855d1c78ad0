"""Telemetry, extrapolation checks and the compute plan."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from analysis import (
    CollectWarning,
    collect,
    cost_model,
    default_budget,
    extrapolate,
    extrapolation_groups,
    main_grid,
    plan,
    telemetry,
    telemetry_table,
)
from analysis.fakes import achieved_flops, make_sweep


@pytest.fixture
def df(sweep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollectWarning)
        return collect(sweep, write=False)


def test_telemetry_has_one_row_per_run_with_throughput_mfu_and_memory(sweep):
    tel = telemetry(sweep).set_index("run_id")
    assert len(tel) == 39
    run = tel.loc["w16-n1000-v1000-s0"]
    assert run.tflops_per_s == pytest.approx(achieved_flops(16) / 1e12, rel=0.1)
    assert run.mfu > 0 and run.max_mem_bytes > 1e8 and run.devices == 1 and run.steps == 3
    assert run.device_s_per_flop == pytest.approx(1 / achieved_flops(16), rel=0.1)
    assert tel.loc["w4-n1000000-v1000-s2"].steps == 0  # never started: still a row
    table = telemetry_table(tel.reset_index())
    assert list(table.width) == [4, 16] and "MFU" in table


def test_cost_model_is_per_width_with_a_fallback():
    import pandas as pd
    tel = pd.DataFrame({"width": [4.0, 4.0, 8.0], "device_s_per_flop": [1.0, 3.0, np.nan]})
    cost = cost_model(tel).set_index("width")
    assert cost.loc[4.0, "device_s_per_flop"] == 2.0 and cost.loc[4.0, "source"] == "width"
    assert cost.loc[8.0, "device_s_per_flop"] == 2.0 and cost.loc[8.0, "source"] == "all runs"


def test_extrapolation_holds_out_the_largest_size_and_judges_the_fit(df):
    group = df[(df.status == "done") & (df.width == 16) & (df.vocab == "all")
               & (df.target == "fine")]
    ext = extrapolate(group, n_boot=50)
    assert ext.fit.n == 6 and len(ext.held) == 3
    assert set(ext.held.dataset_images) == {100_000}
    assert ext.decades == pytest.approx(1.0)
    assert ext.mae < 2.0 and ext.verdict.split()[0] in ("trusted", "rough")
    table = extrapolation_groups(df, n_boot=10)
    assert len(table) == 8 and table.trust.str.contains("decades").all()


def test_extrapolation_of_a_wrong_law_says_do_not_extrapolate():
    import pandas as pd
    x = np.repeat([1e3, 1e4, 1e5, 1e6, 1e7], 3)
    y = 90 - 80 * x ** -0.3 + np.random.default_rng(0).normal(0, 0.05, len(x))
    ext = extrapolate(pd.DataFrame({"dataset_images": x, "top1": y}), n_boot=20, holdout=2)
    assert ext.verdict.startswith("do not extrapolate") and ext.decades == pytest.approx(2.0)


def test_plan_picks_the_width_and_images_that_the_budget_buys(df, sweep):
    tel = telemetry(sweep)
    done = main_grid(df)
    budget = default_budget(done, tel)
    assert math.isfinite(budget) and budget > 0
    result = plan(done, budget, tel, n_boot=30)
    assert len(result.best) == 4  # vocab x target x protocol
    best = result.best.iloc[0]
    assert best.device_hours == pytest.approx(budget, rel=1e-6)  # more data always helps here
    assert best.lo <= best.top1 <= best.hi and 0 <= best.top1 <= 100
    # the cost model: device-hours = 3 * flops/image * images / achieved FLOP/s
    fpi = 2.0 * 1000 * best.width ** 2
    assert best.images_seen * 3 * fpi / achieved_flops(best.width) / 3600 == pytest.approx(
        budget, rel=0.1)
    assert len(result.candidates) == 8  # one per width and group
    assert "FLOP" in result.assumption and "device-hours" in result._repr_html_()


def test_plan_with_a_joint_error_law(df, sweep):
    one = main_grid(df)
    one = one[(one.vocab == "all") & (one.target == "fine")]
    result = plan(one, 1.0, telemetry(sweep), law="joint", y="error", n_boot=5,
                  loss="huber", delta=1e-3)
    assert len(result.best) == 1 and len(result.candidates) == 2  # one joint fit, 2 widths
    assert 0 <= result.best.top1[0] <= 100 and result.best.law[0] == "joint"


def test_plan_rejects_a_non_positive_budget(df, sweep):
    with pytest.raises(ValueError, match="budget_hours"):
        plan(df, 0, telemetry(sweep))


def test_ablation_rows_are_kept_out_of_the_main_grid(tmp_path):
    sweep = make_sweep(tmp_path, ablations=True, problems=False, seeds=(0,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollectWarning)
        df = collect(sweep, write=False)
    main = main_grid(df)
    assert set(main["resample"]) == {"natural"} and set(main["label_noise"]) == {0.0}
    assert len(df) - len(main) == 4 * 2  # 4 ablation runs x 2 targets
