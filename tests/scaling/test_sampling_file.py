"""sampling.json: written once at train start by rank 0 (scaling/sampling.py), equal to
data/sampling_stats.py's figures for the run's config, kept by a resumed run."""

from __future__ import annotations

import json

import pytest

from contract.config import load_run_config, read_run_config
from contract.runfolder import SAMPLING_FILE
from scaling.sampling import sampling_payload, stream_draws, write_sampling
from tests.helpers.engine import TINY, make_run, train


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
