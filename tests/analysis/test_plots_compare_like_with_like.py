"""The report's comparison figures (ablation bars, vocabulary x target) must compare runs
that differ only in the compared axis. The table below is paper-mini's shape: a
resampling grid at 192k images seen, a vocabulary grid on the same width, dataset size and
`all` vocabulary but trained twice as long (384k seen), fine-tuned rows beside the linear
ones, and a noise grid elsewhere. Pooled naively, natural sampling's bar took in the
longer vocabulary runs (53 instead of 49) and the `all` vocabulary's cell took in the
resampling grid (53 instead of 61), contradicting the Findings section."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.plots import plot_ablation, vocab_matrix, where_varied


def _row(top1, seed, vocab="all", resample="natural", seen=192000, images=192000,
         noise=0.0, target="fine", protocol="linear"):
    return {"status": "done", "width": 16, "dataset_images": images, "vocab": vocab,
            "resample": resample, "label_noise": noise, "seed": seed, "images_seen": seen,
            "target": target, "protocol": protocol, "top1": top1}


@pytest.fixture
def paper_mini_shaped() -> pd.DataFrame:
    rows = []
    for seed in range(3):
        rows.append(_row(49.0, seed))                            # resampling grid
        rows.append(_row(59.0, seed, resample="uniform"))
        for vocab, top1 in (("16", 47.0), ("all", 61.0), ("matched:coarse", 62.0)):
            rows.append(_row(top1, seed, vocab=vocab, seen=384000))   # vocabulary grid
            rows.append(_row(top1 + 7, seed, vocab=vocab, seen=384000, protocol="finetune"))
            rows.append(_row(top1 - 30, seed, vocab=vocab, seen=384000, target="coarse"))
        rows.append(_row(33.0, seed, images=2000))               # noise grid
        rows.append(_row(29.0, seed, images=2000, noise=0.1))
    return pd.DataFrame(rows)


def _bars(fig) -> dict:
    out = {}
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_xticklabels()]
        out[ax.get_title()] = dict(zip(labels, [p.get_height() for p in ax.patches]))
    return out


def test_ablation_bars_pool_only_runs_that_differ_in_the_ablated_axis(paper_mini_shaped):
    bars = _bars(plot_ablation(paper_mini_shaped, "resample"))
    # one panel: the vocabulary grid (natural only, coarse too) is not a resampling point
    assert list(bars) == ["fine  |  linear"]
    assert bars["fine  |  linear"] == pytest.approx({"natural": 49.0, "uniform": 59.0})
    noise = _bars(plot_ablation(paper_mini_shaped, "label_noise"))
    assert noise["fine  |  linear"] == pytest.approx({"0.0": 33.0, "0.1": 29.0})


def test_vocab_matrix_reads_the_vocabulary_grid_on_one_protocol(paper_mini_shaped):
    table = vocab_matrix(paper_mini_shaped)
    assert table.loc["all", "fine"] == pytest.approx(61.0)       # not pooled with 49 / 59
    assert table.loc["16", "fine"] == pytest.approx(47.0)        # linear, not finetune's 54
    assert table.loc["matched:coarse", "coarse"] == pytest.approx(32.0)
    assert list(table.index) == ["16", "all", "matched:coarse"]


def test_vocab_matrix_of_a_sweep_with_one_vocabulary_still_shows_it(paper_mini_shaped):
    one = paper_mini_shaped[paper_mini_shaped["vocab"].eq("all")
                            & paper_mini_shaped["images_seen"].eq(192000)]
    table = vocab_matrix(one)
    assert list(table.index) == ["all"]
    # the main grid: natural sampling and no label noise, the largest dataset
    assert table.loc["all", "fine"] == pytest.approx(49.0)


def test_where_varied_keeps_points_with_two_levels_whatever_else_differs(paper_mini_shaped):
    kept = where_varied(paper_mini_shaped, "resample")
    assert set(kept["images_seen"]) == {192000} and set(kept["dataset_images"]) == {192000}
    assert set(kept["resample"]) == {"natural", "uniform"}


def test_where_varied_groups_list_valued_axes(paper_mini_shaped):
    # collect reads an axis over lists (here a pretraining one) back as arrays, unhashable
    df = paper_mini_shaped.assign(**{"optim.milestones": [
        np.array([1, 2]) if s == 0 else np.array([2, 4]) for s in paper_mini_shaped["seed"]]})
    kept = where_varied(df, "resample")
    # seeds no longer share a point (each seed its own milestones), but each keeps both
    # schemes, so the same rows are kept
    assert set(kept["resample"]) == {"natural", "uniform"} and len(kept) == 6
    # as the compared axis itself: every point has both lists (over its seeds), so all stay
    assert len(where_varied(df, "optim.milestones")) == len(df)
