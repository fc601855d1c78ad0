"""collect(): the sweep folder -> results table contract."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
import yaml

from analysis import (
    CollectWarning,
    SchemaVersionError,
    collect,
    load_results,
    read_metrics,
    run_states,
)
from analysis.collect import COLUMNS
from analysis.fakes import make_sweep

CONTRACT = ["sweep", "run_id", "status", "train_status", "transfer_status", "arch", "depth",
            "width", "cardinality", "base_width", "params", "flops_per_image",
            "dataset_images", "vocab", "resample", "label_noise", "seed", "data_seed",
            "images_seen",
            "pretrain_flops", "target", "protocol", "top1", "top5", "floor_top1",
            "floor_top5", "git_sha",
            # the transfer files' fields added with the protocols (issue 12)
            "top1_dedup", "n_duplicates", "n_train", "n_test", "num_classes", "l2",
            "feature_dim", "transfer_wall_s", "supervised", "precision",
            # runs/<id>/sampling.json (what the resampling shows)
            "sampling_draws", "sampling_distinct", "sampling_repeats",
            "sampling_tail_images", "sampling_tail_share", "sampling_tail_distinct",
            "sampling_tail_repeats"]


def _collect(*dirs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollectWarning)
        return collect(*dirs, **kw)


def test_columns_are_the_contract_then_extra_sweep_axes(sweep):
    df = _collect(sweep)
    assert list(df.columns) == CONTRACT + ["optim.lr_per_256"]
    assert list(COLUMNS) == CONTRACT


def test_one_row_per_run_target_protocol_and_one_row_for_runs_without_results(sweep):
    df = _collect(sweep)
    done = df[df.status == "done"]
    assert len(done) == 2 * 2 * 3 * 3 * 2  # widths x vocabs x sizes x seeds x targets
    assert set(done.target) == {"fine", "coarse"} and set(done.protocol) == {"linear"}
    assert df.groupby("run_id").size().loc["w4-n1000000-v1000-s0"] == 1
    assert df.run_id.nunique() == 36 + 3


def test_status_keeps_failed_running_and_never_started_runs_visible(sweep):
    df = _collect(sweep).set_index("run_id")
    failed = df.loc["w4-n1000000-v1000-s0"]
    assert (failed.status, failed.train_status, failed.transfer_status) == \
        ("failed", "failed", "pending")
    assert pd.isna(failed.target) and pd.isna(failed.top1)
    assert failed.dataset_images == 1_000_000 and failed.width == 4  # config still read
    corrupt = df.loc["w4-n1000000-v1000-s1"]  # transfer running, truncated transfer JSON
    assert (corrupt.status, corrupt.train_status, corrupt.transfer_status) == \
        ("corrupt", "done", "running")
    assert corrupt.target == "fine" and pd.isna(corrupt.top1)
    pending = df.loc["w4-n1000000-v1000-s2"]  # no state.json
    assert (pending.status, pending.train_status) == ("pending", "pending")


def test_status_is_transfer_phase_once_training_is_done(tmp_path):
    sweep = make_sweep(tmp_path, widths=(4,), vocabs=(1000,), images=(1000,), seeds=(0,),
                       targets=("fine",), problems=False)
    state = sweep / "runs" / "w4-n1000-v1000-s0" / "state.json"
    obj = json.loads(state.read_text())
    obj.update(train="done", transfer="preempted")
    state.write_text(json.dumps(obj))
    assert _collect(sweep).status.tolist() == ["preempted"]
    obj.update(train="running", transfer="pending")
    state.write_text(json.dumps(obj))
    assert _collect(sweep).status.tolist() == ["running"]


def test_values_come_from_config_and_manifest_with_vocab_as_text(sweep):
    df = _collect(sweep)
    row = df[(df.run_id == "w16-n10000-vall-s1") & (df.target == "fine")].iloc[0]
    assert (row.width, row.dataset_images, row.vocab, row.seed) == (16, 10_000, "all", 1)
    assert (row.arch, row.depth, row.cardinality, row.base_width) == ("resnext", 11, 4, 16)
    assert row.images_seen == 100_000 and row.params == 256_000
    assert row.pretrain_flops == pytest.approx(6.0 * 256_000 * 100_000)
    assert row.git_sha == "abc1234" and row["optim.lr_per_256"] == 0.1
    assert set(df.vocab) == {"1000", "all"}


def test_corrupt_file_warns_naming_it_instead_of_raising(sweep):
    with pytest.warns(CollectWarning, match="fine__linear.json: corrupt JSON"):
        collect(sweep, write=False)


def test_corrupt_state_json_is_the_runs_status(sweep):
    (sweep / "runs" / "w4-n1000-v1000-s0" / "state.json").write_text("{not json")
    df = _collect(sweep, write=False)
    rows = df[df.run_id == "w4-n1000-v1000-s0"]
    assert set(rows.status) == {"corrupt"} and rows.train_status.isna().all()
    states = run_states(sweep).set_index("run_id")
    assert "state.json: corrupt JSON" in states.loc["w4-n1000-v1000-s0", "error"]


def test_results_parquet_is_written_and_reads_back_identically(sweep):
    df = _collect(sweep)
    path = sweep / "results.parquet"
    assert path.exists()
    assert not [p for p in sweep.iterdir() if p.name.endswith(".tmp")]  # temp file replaced
    pd.testing.assert_frame_equal(load_results(sweep), df)
    pd.testing.assert_frame_equal(pd.read_parquet(path), df, check_dtype=False)


def test_write_false_leaves_no_file(sweep):
    _collect(sweep, write=False)
    assert not (sweep / "results.parquet").exists()


def test_several_sweeps_merge_with_the_union_of_their_axes(tmp_path):
    a = make_sweep(tmp_path, name="a", problems=False, seeds=(0,))
    b = make_sweep(tmp_path, name="b", widths=(8,), vocabs=("matched:fine",), seeds=(0,),
                   problems=False)
    df = _collect(a, b)
    assert set(df.sweep) == {"a", "b"}
    assert len(df) == 2 * 2 * 3 * 2 + 3 * 2
    assert set(df.vocab) == {"1000", "all", "matched:fine"}
    assert (a / "results.parquet").exists() and (b / "results.parquet").exists()
    assert set(load_results(b).sweep) == {"b"}  # each sweep gets its own rows


def test_newer_schema_version_is_rejected_with_a_one_line_error(sweep):
    path = sweep / "runs" / "w4-n1000-v1000-s0" / "transfer" / "fine__linear.json"
    obj = json.loads(path.read_text())
    obj["schema_version"] = 2
    path.write_text(json.dumps(obj))
    with pytest.raises(SchemaVersionError, match="schema_version 2 is newer") as info:
        _collect(sweep)
    assert "\n" not in str(info.value) and "fine__linear.json" in str(info.value)


def test_missing_sweep_folder_is_a_clear_error(tmp_path):
    from contract.errors import ConfigError

    with pytest.raises(ConfigError, match="nope does not exist: give a folder made by"):
        collect(tmp_path / "nope")


def test_runs_folder_is_read_when_the_manifest_is_missing(sweep):
    (sweep / "manifest.csv").unlink()
    df = _collect(sweep, write=False)
    assert df.run_id.nunique() == 39
    assert df.params.isna().all() and "optim.lr_per_256" not in df.columns


def test_run_states_reports_errors_attempts_and_stale_heartbeats(sweep):
    states = run_states(sweep).set_index("run_id")
    assert len(states) == 39
    failed = states.loc["w4-n1000000-v1000-s0"]
    assert failed.error == "RuntimeError: CUDA out of memory" and failed.attempts == 3
    assert bool(states.loc["w4-n1000000-v1000-s1", "stale"])  # running, heartbeat in 2025
    assert not states.loc["w4-n1000-v1000-s0", "stale"]


def test_read_metrics_skips_a_truncated_last_line(sweep):
    run = sweep / "runs" / "w4-n1000-v1000-s0"
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss"')
    metrics = read_metrics(run)
    assert metrics.step.tolist() == [0, 1, 2] and "loss" in metrics
    assert read_metrics(sweep / "runs" / "w4-n1000000-v1000-s2").empty


def test_results_name_the_world_each_run_was_trained_on(tmp_path):
    # data.seed picks the synthetic world: a `set` value in the sweep file names no run, so
    # the results must carry it, from the run's own config
    sweep = make_sweep(tmp_path, widths=(4,), vocabs=("all",), images=(1_000,), seeds=(0, 1),
                       targets=("fine",), problems=False)
    worlds = {}
    for run in sorted((sweep / "runs").iterdir()):
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["data"]["seed"] = worlds[run.name] = 43 + 4 * len(worlds)
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    df = _collect(sweep)
    assert dict(zip(df.run_id, df.data_seed)) == worlds and len(worlds) == 2
