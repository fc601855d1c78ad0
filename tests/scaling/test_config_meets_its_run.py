"""What a run is made of is said, never assumed: a sweep file must name its base (without
one every run was silently the paper's ResNeXt-101 at 224 px), and a checkpoint whose
weights do not fit the model config.yaml now describes is refused in one line."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers.cli_checks import cli, make_run, state


@pytest.mark.parametrize("base", [None, {}])
def test_a_sweep_file_without_a_base_is_refused(tmp_path, capsys, repo_root, base):
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(yaml.safe_dump({"name": "onlyname"} if base is None
                                         else {"name": "onlyname", "base": base}))
    code, _, line = cli(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    what = "base is missing" if base is None else "base={} is invalid"
    assert code == 2 and line == (f"error: {what}: a sweep file needs a base run config, e.g. "
                                  "`base: configs/base-cpu.yaml` (a file, next to the sweep "
                                  "file or from the current folder) or an inline mapping")
    assert not (tmp_path / "sweeps").exists()
    # the advice, followed (the shipped base, from the repository's folder)
    sweep_file.write_text(yaml.safe_dump({"name": "onlyname",
                                          "base": str(repo_root / "configs/base-cpu.yaml")}))
    code, out, line = cli(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    assert code == 0 and "1 runs" in out
    config = yaml.safe_load((tmp_path / "sweeps/onlyname/runs").glob("*/config.yaml")
                            .__next__().read_text())
    assert config["model"]["image_size"] < 224


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])  # a full state dict; DCP's shards
def test_a_width_edited_after_the_checkpoints_is_one_line_and_the_fix_works(tmp_path, capsys,
                                                                            strategy):
    run = make_run(tmp_path, shard__strategy=strategy)
    code, _, line = cli(capsys, "train", "--config", run / "config.yaml")
    assert code == 0, line
    # what a cancelled run leaves: complete checkpoints, no final/, train 'cancelled'
    st = state(run)
    st["train"] = "cancelled"
    (run / "state.json").write_text(json.dumps(st))
    _remove(run / "final")
    original = (run / "config.yaml").read_text()
    edited = yaml.safe_load(original)
    edited["model"]["width_per_group"] = 8
    (run / "config.yaml").write_text(yaml.safe_dump(edited))
    code, _, line = cli(capsys, "train", "--config", run / "config.yaml")
    newest = sorted((run / "checkpoints").iterdir())[-1]
    assert code == 1 and line.startswith(f"error: checkpoint {newest} does not match the model "
                                         "config.yaml describes (")
    assert line.endswith(f"was model.* edited after the run started? put config.yaml back as "
                         f"the run began, or remove {run / 'checkpoints'} to start over")
    (run / "config.yaml").write_text(original)  # the first fix: the config put back
    code, _, line = cli(capsys, "train", "--config", run / "config.yaml")
    assert code == 0 and state(run)["train"] == "done", line
    # the second fix: the edited config kept, the checkpoints removed: a fresh start
    (run / "config.yaml").write_text(yaml.safe_dump(edited))
    st = state(run)
    st["train"] = "cancelled"
    (run / "state.json").write_text(json.dumps(st))
    _remove(run / "final")
    _remove(run / "checkpoints")
    code, _, line = cli(capsys, "train", "--config", run / "config.yaml")
    assert code == 0 and state(run)["train"] == "done", line
    assert state(run).get("resumed_from") is None


def _remove(folder):
    import shutil

    shutil.rmtree(folder)
