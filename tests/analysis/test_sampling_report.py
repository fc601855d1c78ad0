"""The resampling mechanism in collect and the report: sampling.json -> `sampling_*`
columns (NaN without the file, a warning for a corrupt one) -> analysis.sampling's table
and the words computed from it."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from analysis.collect import CollectWarning, collect
from analysis.fakes import make_sweep
from analysis.sampling import sampling_table, sampling_text
from contract.runfolder import SAMPLING_FILE, write_json

# expected figures of each scheme at the ablation point (made up, easy to check by hand)
FIGURES = {
    "natural": dict(draws=1000, distinct=900.0, repeats=1000 / 900, tail_images=100,
                    tail_share=0.1, tail_distinct=100.0, tail_repeats=1.0),
    "sqrt": dict(draws=1000, distinct=600.0, repeats=1000 / 600, tail_images=100,
                 tail_share=0.3, tail_distinct=90.0, tail_repeats=300 / 90),
    "uniform": dict(draws=1000, distinct=450.0, repeats=1000 / 450, tail_images=100,
                    tail_share=0.5, tail_distinct=80.0, tail_repeats=500 / 80),
}


def _collect(*dirs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollectWarning)
        return collect(*dirs, write=False)


@pytest.fixture
def ablated(tmp_path):
    sweep = make_sweep(tmp_path, widths=(4,), vocabs=(1000,), images=(1_000, 10_000),
                       seeds=(0, 1), targets=("fine",), problems=False, ablations=True)
    df = _collect(sweep).drop_duplicates("run_id")
    point = df[(df["resample"] != "natural") | (df.label_noise != 0)]
    at = point.iloc[0]
    runs = df[(df.dataset_images == at.dataset_images) & (df.width == at.width)
              & (df.label_noise == 0)]
    assert set(runs["resample"]) == {"natural", "sqrt", "uniform"}
    for row in runs.itertuples():
        write_json(sweep / "runs" / row.run_id / SAMPLING_FILE,
                   {"resample": row.resample, **FIGURES[row.resample]})
    return sweep, runs


def test_collect_reads_the_file_into_columns_and_nan_without_it(ablated):
    sweep, runs = ablated
    df = _collect(sweep).drop_duplicates("run_id").set_index("run_id")
    for row in runs.itertuples():
        want = FIGURES[row.resample]
        got = df.loc[row.run_id]
        assert got.sampling_distinct == want["distinct"]
        assert got.sampling_tail_share == want["tail_share"]
        assert got.sampling_tail_repeats == pytest.approx(want["tail_repeats"])
        assert got.sampling_draws == want["draws"]
    others = df.drop(index=list(runs.run_id))
    assert others.sampling_distinct.isna().all() and others.sampling_draws.isna().all()


def test_a_corrupt_file_is_a_warning_and_nan_not_a_corrupt_run(ablated):
    sweep, runs = ablated
    run_id = runs.run_id.iloc[0]
    (sweep / "runs" / run_id / SAMPLING_FILE).write_text("{not json")
    with pytest.warns(CollectWarning, match="sampling.json.*scaling data sampling"):
        df = collect(sweep, write=False)
    row = df[df.run_id == run_id].iloc[0]
    assert pd.isna(row.sampling_distinct) and row.status == "done"


def test_table_per_scheme_and_words_from_the_numbers(ablated):
    sweep, runs = ablated
    table = sampling_table(_collect(sweep)).set_index("resample")
    assert list(table.index) == ["natural", "sqrt", "uniform"]
    assert (table.runs == 2).all() and (table.with_figures == 2).all()
    assert table.loc["uniform", "distinct"] == 450.0
    assert table.loc["uniform", "tail_share"] == 0.5
    text = sampling_text(table.reset_index())
    uniform = next(line for line in text.splitlines() if "**uniform**" in line)
    assert "450 distinct images against natural's 900 (0.50x)" in uniform
    assert "2.2 times on average (natural: 1.1)" in uniform
    assert "50.0% of its draws against 10.0%, 5.0x more" in uniform
    assert "showing 80 of them 6.2 times each" in uniform
    assert "by repeating fewer images, not by showing more distinct ones" in uniform
    assert "3.0x more" in next(line for line in text.splitlines() if "**sqrt**" in line)


def test_a_scheme_that_shows_more_distinct_images_is_worded_so(ablated):
    sweep, runs = ablated
    for row in runs[runs["resample"] == "uniform"].itertuples():
        write_json(sweep / "runs" / row.run_id / SAMPLING_FILE,
                   {**FIGURES["uniform"], "distinct": 950.0})
    text = sampling_text(sampling_table(_collect(sweep)))
    line = next(line for line in text.splitlines() if "**uniform**" in line)
    assert "(1.06x)" in line and "shows more distinct images as well" in line


def test_without_files_or_without_a_varied_scheme_the_text_says_so(tmp_path, ablated):
    sweep, runs = ablated
    for row in runs.itertuples():
        (sweep / "runs" / row.run_id / SAMPLING_FILE).unlink()
    table = sampling_table(_collect(sweep))
    assert (table.with_figures == 0).all() and table.distinct.isna().all()
    assert "run `scaling data sampling`" in sampling_text(table)
    plain = make_sweep(tmp_path / "plain", widths=(4,), vocabs=(1000,), images=(1_000,),
                       seeds=(0,), targets=("fine",), problems=False)
    assert sampling_table(_collect(plain)).empty
    assert "does not vary resampling" in sampling_text(sampling_table(_collect(plain)))


@pytest.mark.integration
def test_the_report_shows_the_table_and_the_words(ablated, monkeypatch):
    from analysis.report import report
    from tests.helpers.slurm_runs import _jupyter_path

    for key, value in _jupyter_path().items():  # nbconvert's templates from a layered venv
        monkeypatch.setenv(key, value)
    sweep, _ = ablated
    text = report(sweep, n_boot=5, n_boot_nonlinear=2, budget_hours=5.0).read_text()
    assert "What resampling shows the model" in text and "Traceback" not in text
    assert "450 distinct images against natural&#x27;s 900 (0.50x)" in text or \
        "450 distinct images against natural's 900 (0.50x)" in text
    assert "tail_repeats" in text  # the table
