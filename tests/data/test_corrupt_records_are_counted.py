"""A WebDataset source missing half its images is never trained on silently: the
run fails above data.max_corrupt_frac with the counts named; below it, the counts are in
state.json and in the report's run table."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from contract.config import DataConfig
from tests.helpers.cli_checks import BASE, cli, make_run, set_dotted, state
from tests.helpers.slurm_runs import write_sweep_file

N = 64


@pytest.fixture(scope="module")
def half_missing(tmp_path_factory):
    """One WebDataset shard of N samples where every other sample lost its image."""
    from contract.world_config import WorldConfig
    from data.materialize import materialize

    root = tmp_path_factory.mktemp("wds")
    cfg = DataConfig(source="synthetic", path=None, images=N, vocab="all",
                     resample="natural", label_noise=0.0, targets="soft", seed=0,
                     cache=False, world=WorldConfig())
    folder = materialize(cfg, 16, str(root / "wds"), "webdataset", n=N, shard_size=N)
    shard = next(folder.glob("*.tar"))
    with tarfile.open(shard) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers() if m.isfile()]
    keys = sorted({m.name.split(".")[0] for m, _ in members})
    gone = set(keys[1::2])
    with tarfile.open(shard, "w") as tf:
        for member, data in members:
            if member.name.split(".")[0] in gone and not member.name.endswith(".json"):
                continue
            tf.addfile(member, io.BytesIO(data))
    return str(folder), len(gone)


def _run(tmp_path, path, **overrides):
    return make_run(tmp_path, data__source="webdataset", data__path=path, data__images=N,
                    data__vocab="all", optim__images_seen=32, **overrides)


def test_train_fails_above_max_corrupt_frac_naming_the_counts(tmp_path, capsys, half_missing):
    path, gone = half_missing
    run = _run(tmp_path, path)
    code, _, line = cli(capsys, "train", "--config", run / "config.yaml")
    assert code == 1
    assert f"{gone} of the first {N} records (50.0%)" in line
    assert "more than data.max_corrupt_frac=0.01" in line
    st = state(run)
    assert st["train"] == "failed" and f"{gone} of the first {N} records" in st["error"]
    assert not (run / "final").exists()


def test_below_the_limit_the_counts_are_recorded_and_reported(tmp_path, capsys, half_missing):
    from analysis import run_states

    path, gone = half_missing
    run = _run(tmp_path / "sweep" / "runs", path, data__max_corrupt_frac=0.6)
    code, out, line = cli(capsys, "train", "--config", run / "config.yaml")
    assert code == 0, line
    data = state(run)["data"]
    assert data["records"] == N and data["corrupt"] == gone
    assert data["kept"] + data["dropped"] + data["corrupt"] == N
    assert f"{gone} of {N} records" in out  # said on the log, not only in a file
    row = run_states(tmp_path / "sweep").iloc[0]
    assert row.corrupt_records == gone and row.data_records == N


def test_sweep_refuses_the_damaged_source_before_writing(tmp_path, capsys, half_missing):
    path, gone = half_missing
    base = json.loads(json.dumps(BASE))
    for key, value in {"data.source": "webdataset", "data.path": path, "data.images": N,
                       "data.vocab": "all"}.items():
        set_dotted(base, key, value)
    code, _, line = cli(capsys, "sweep", write_sweep_file(tmp_path, base=base),
                        "--root", tmp_path / "sweeps")
    assert code == 2 and f"run run: data.path={path!r}: {gone} of the first {N}" in line
    assert not (tmp_path / "sweeps").exists()


def test_max_corrupt_frac_does_not_change_the_config_hash():
    from contract.config import RunConfig, config_hash, from_dict

    a = from_dict(RunConfig, {"data": {"max_corrupt_frac": 0.01}})
    b = from_dict(RunConfig, {"data": {"max_corrupt_frac": 0.5}})
    assert config_hash(a) == config_hash(b)
