"""A run config is read one way (contract.config.read_run_config), so the
same bad value gets the same one-line answer from `scaling sweep`, `scaling train`, the
Slurm/local executors' resource reader and `scaling collect`."""

from __future__ import annotations

import json
import warnings

import pytest

from tests.helpers.cli_checks import BASE, cli, make_run, set_dotted
from tests.helpers.slurm_runs import write_sweep_file

INTEGER = "is invalid: use an integer written without quotes, a decimal point or an exponent"
CASES = [
    ("data.images", "5", f"data.images='5' {INTEGER}"),
    ("resources.nodes", "2", f"resources.nodes='2' {INTEGER}"),
    ("model.stem", "big", "model.stem='big' is invalid: use 'imagenet' or 'small'"),
    ("optim.lr_per25", 1, "unknown field 'optim.lr_per25': did you mean 'optim.lr_per_256'?"),
]


def _sweep_folder(tmp_path, dotted, value):
    """A sweep folder as `scaling sweep` lays it out, with one run holding the bad value."""
    sweep = tmp_path / "swept"
    run = make_run(sweep / "runs", "r0", **{dotted.replace(".", "__"): value})
    (sweep / "manifest.csv").write_text("run_id\nr0\n")
    (sweep / "sweep.yaml").write_text("name: swept\n")
    return sweep, run


@pytest.mark.parametrize("dotted,value,message", CASES)
def test_sweep_train_executors_and_collect_give_the_same_answer(tmp_path, capsys, dotted,
                                                                value, message):
    from analysis.collect import CORRUPT, collect, run_states
    from contract.errors import ConfigError
    from slurm.tasks import run_resources

    base = set_dotted(json.loads(json.dumps(BASE)), dotted, value)
    code, _, line = cli(capsys, "sweep", write_sweep_file(tmp_path, base=base),
                        "--root", tmp_path / "sweeps")
    assert code == 2 and message in line, line

    sweep, run = _sweep_folder(tmp_path, dotted, value)
    code, _, line = cli(capsys, "train", "--config", run / "config.yaml")
    assert code == 2 and message in line, line
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]  # nothing started

    with pytest.raises(ConfigError) as info:
        run_resources(run)
    assert message in str(info.value) and str(run / "config.yaml") in str(info.value)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = collect(sweep, write=False)
    assert list(rows["status"]) == [CORRUPT]
    assert any(message in str(w.message) for w in caught), [str(w.message) for w in caught]
    states = run_states(sweep)
    assert message in states.loc[0, "error"]


def test_a_good_config_is_read_alike_by_train_the_executors_and_collect(tmp_path, capsys):
    from analysis.collect import collect
    from slurm.tasks import run_resources

    sweep, run = _sweep_folder(tmp_path, "resources.nodes", 2)
    code, out, line = cli(capsys, "train", "--config", run / "config.yaml", "--print_config")
    assert code == 0, line
    assert "nodes: 2" in out
    assert run_resources(run).nodes == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no CollectWarning: the config is fine
        rows = collect(sweep, write=False)
    assert list(rows["status"]) == ["pending"]
