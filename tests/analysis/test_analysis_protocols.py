"""collect reads the transfer files' new fields; the protocol table, few-shot curves and the
supervised baseline table shape them for the report."""

import json

import pandas as pd

from analysis import collect
from analysis import protocols as P
from analysis.fakes import PROTOCOL_OFFSET


def _add_fields(sweep):
    """Give every linear result a lower bound 2 points down, and every done run a few-shot
    curve (k = 1, 5 at 10 and 20 points)."""
    for path in sweep.glob("runs/*/transfer/*__linear.json"):
        rec = json.loads(path.read_text())
        rec.update(top1_dedup=rec["top1"] - 2.0, n_duplicates=8, feature_dim=256, l2=1e-3,
                   wall_s=1.5)
        path.write_text(json.dumps(rec))
        fewshot = path.with_name(path.name.replace("__linear", "__fewshot"))
        fewshot.write_text(json.dumps({
            "schema_version": 1, "target": rec["target"], "protocol": "fewshot",
            "top1": 20.0, "top5": 40.0, "shots": [1, 5],
            "fewshot": [{"k": 1, "n_train": 20, "draws": 3, "top1": 10.0, "top1_sd": 1.0,
                         "top5": 30.0, "top5_sd": 2.0},
                        {"k": 5, "n_train": 100, "draws": 3, "top1": 20.0, "top1_sd": 0.5,
                         "top5": 40.0, "top5_sd": 1.0}]}))


def test_collect_reads_the_lower_bound_sizes_and_wall_time(make):
    sweep = make(protocols=("linear", "finetune"), problems=False, seeds=(0,))
    _add_fields(sweep)
    df = collect(sweep, write=True)
    lin = df[df.protocol == "linear"]
    assert (lin.top1 - lin.top1_dedup).round(6).eq(2.0).all()
    assert lin.n_duplicates.eq(8).all() and lin.feature_dim.eq(256).all()
    assert lin.transfer_wall_s.eq(1.5).all() and lin.n_train.eq(400).all()
    assert df[df.protocol == "finetune"].top1_dedup.isna().all()
    assert pd.read_parquet(sweep / "results.parquet").top1_dedup.notna().sum() == len(lin)


def test_protocol_table_puts_finetune_beside_linear_per_target(make):
    sweep = make(protocols=("linear", "finetune"), problems=False, noise=0.0, seeds=(0, 1))
    _add_fields(sweep)
    table = P.protocol_table(collect(sweep, write=False))
    assert {"top1_linear", "top1_finetune", "top1_fewshot", "finetune_minus_linear",
            "top1_dedup_linear"} <= set(table.columns)
    assert table.finetune_minus_linear.round(6).eq(PROTOCOL_OFFSET["finetune"]).all()
    assert (table.top1_linear - table.top1_dedup_linear).round(6).eq(2.0).all()
    assert set(table.target) == {"fine", "coarse"}
    fig = P.plot_protocols(collect(sweep, write=False))
    assert [ax.get_title() for ax in fig.axes] == ["coarse", "fine"]


def test_fewshot_curves_have_a_row_per_run_target_and_k(make):
    sweep = make(problems=False, seeds=(0,), widths=(4,), vocabs=("all",))
    _add_fields(sweep)
    curves = P.fewshot_curves(sweep)
    assert len(curves) == 3 * 2 * 2          # sizes x targets x k
    assert sorted(curves.k.unique()) == [1, 5]
    assert curves.groupby("k").top1.mean().to_dict() == {1: 10.0, 5: 20.0}
    assert curves.width.eq(4).all() and curves.dataset_images.notna().all()
    fig = P.plot_fewshot(curves)
    assert len(fig.axes) == 2 and all(len(ax.lines) for ax in fig.axes)


def test_supervised_runs_stay_out_of_the_protocol_table_and_get_their_own(make):
    sweep = make(problems=False, seeds=(0,), widths=(4,), vocabs=("all",))
    run = sorted((sweep / "runs").iterdir())[0]
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("data:\n", "data:\n  supervised: fine\n", 1))
    df = collect(sweep, write=False)
    assert df[df.run_id == run.name].supervised.eq("fine").all()
    table = P.protocol_table(df)
    assert len(table) == 2 * 2                 # the other two sizes x two targets
    sup = P.supervised_table(df)
    assert "supervised:fine" in sup.columns and "hashtags" in sup.columns
    assert sup["supervised:fine"].notna().sum() == 2


def test_the_helpers_accept_a_sweep_without_transfer_results(make):
    sweep = make(problems=False, seeds=(0,), widths=(4,), vocabs=("all",), images=(1000,))
    for path in sweep.glob("runs/*/transfer/*.json"):
        path.unlink()
    df = collect(sweep, write=False)
    assert P.protocol_table(df).empty and P.supervised_table(df).empty
    assert P.fewshot_curves(sweep).empty
    P.plot_protocols(df)
    P.plot_fewshot(P.fewshot_curves(sweep))
