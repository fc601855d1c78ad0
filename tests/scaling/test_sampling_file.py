"""sampling.json: written once at train start by rank 0 (scaling/sampling.py), equal to
data/sampling_stats.py's figures for the run's config, kept by a resumed run."""

from __future__ import annotations

import json

import pytest

from contract.config import load_run_config, read_run_config
from contract.runfolder import SAMPLING_FILE
from scaling.sampling import sampling_payload, stream_draws, write_sampling
from tests.helpers.console import main, one_error_line
from tests.helpers.engine import TINY, make_run, train
from tests.helpers.slurm_runs import write_sweep


@pytest.mark.integration
def test_a_trained_run_holds_its_sampling_figures(tmp_path):
    run = make_run(tmp_path, data__resample="uniform")
    train(run)
    got = json.loads((run / SAMPLING_FILE).read_text())
    config = load_run_config(run / "config.yaml")
    want = sampling_payload(config)
    assert got.pop("schema_version") >= 1
    assert got == pytest.approx(want) and got["resample"] == "uniform"
    assert got["draws"] == stream_draws(config) == 320  # 20 steps x 16
    assert got["distinct"] < got["images"] and got["tail_share"] > got["tail_image_share"]
    # not part of the config: the config file the run wrote does not mention it
    assert "sampling" not in (run / "config.yaml").read_text()


@pytest.mark.integration
def test_a_run_that_has_the_file_keeps_it(tmp_path):
    """What a resumed run sees: the file of its first attempt is not rewritten."""
    run = make_run(tmp_path, optim__images_seen=16)
    (run / SAMPLING_FILE).write_text('{"first_attempt": true}\n')
    train(run)
    assert json.loads((run / SAMPLING_FILE).read_text()) == {"first_attempt": True}


def test_an_existing_file_is_kept_unless_forced(tmp_path):
    config = read_run_config(json.loads(json.dumps(TINY)))
    path = tmp_path / SAMPLING_FILE
    assert write_sampling(tmp_path, config) == path
    path.write_text('{"kept": true}\n')
    assert write_sampling(tmp_path, config) is None
    assert json.loads(path.read_text()) == {"kept": True}
    assert write_sampling(tmp_path, config, force=True) == path
    assert json.loads(path.read_text())["resample"] == "natural"


def test_backfill_writes_the_runs_that_lack_it(tmp_path, capsys):
    """`scaling data sampling SWEEP RUN`: every run of the sweep without the file gets it
    (the same figures the Trainer writes), a run that has one keeps it."""
    sweep = write_sweep(tmp_path, "s", {"nat": {}, "uni": {"data.resample": "uniform"},
                                        "had": {"data.resample": "sqrt"}})
    (sweep / "runs" / "had" / SAMPLING_FILE).write_text('{"first": true}\n')
    lone = make_run(tmp_path, "lone", data__resample="uniform", optim__images_seen=640)
    proc = main(capsys, "data", "sampling", sweep, lone)
    assert proc.returncode == 0, proc.stderr
    assert "3 written, 1 kept" in proc.stdout
    assert json.loads((sweep / "runs" / "had" / SAMPLING_FILE).read_text()) == {"first": True}
    for run in (sweep / "runs" / "nat", sweep / "runs" / "uni", lone):
        got = json.loads((run / SAMPLING_FILE).read_text())
        got.pop("schema_version")
        assert got == pytest.approx(sampling_payload(load_run_config(run / "config.yaml")))
    uni = json.loads((sweep / "runs" / "uni" / SAMPLING_FILE).read_text())
    assert json.loads((lone / SAMPLING_FILE).read_text())["draws"] == 2 * uni["draws"]
    # --overwrite rewrites the kept one
    assert main(capsys, "data", "sampling", sweep, "--overwrite").returncode == 0
    assert json.loads((sweep / "runs" / "had" / SAMPLING_FILE).read_text())["resample"] \
        == "sqrt"


def test_backfill_of_a_foreign_folder_is_one_line_and_writes_nothing(tmp_path, capsys):
    run = make_run(tmp_path, "run")
    proc = main(capsys, "data", "sampling", run, tmp_path / "nope")
    assert proc.returncode == 2
    assert "nope is neither a run folder" in one_error_line(proc)
    assert not (run / SAMPLING_FILE).exists()
