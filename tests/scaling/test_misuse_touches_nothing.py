"""Misuse of the sweep and data commands never
deletes, rewrites or reads outside what it owns; each refusal is one line, exit non-zero."""

from __future__ import annotations

import json

import yaml

from tests.helpers.console import (
    main,
    one_error_line,
    snapshot,
    tiny_config,
)
from tests.helpers.slurm_runs import write_sweep, write_sweep_file


def _done_run(sweep, run_id="r0"):
    run = sweep / "runs" / run_id
    run.mkdir(parents=True, exist_ok=True)
    (run / "state.json").write_text(json.dumps({"schema_version": 1, "train": "done",
                                                "transfer": "done", "attempts": 1}))
    (run / "transfer").mkdir(exist_ok=True)
    (run / "transfer" / "fine__linear.json").write_text('{"top1": 40.0}')
    return run


# ---------------------------------------------------------------- 1. materialize --overwrite

def test_materialize_overwrite_never_deletes_a_sweep_the_cwd_or_the_inputs(tmp_path, capsys,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a sweep folder with a done run, holding the config that is read
    sweep = tmp_path / "study"
    _done_run(sweep)
    cfg = sweep / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config()))
    before = snapshot(tmp_path)

    proc = main(capsys, "data", "materialize", cfg, sweep, "--n", "8", "--overwrite")
    assert proc.returncode != 0
    assert "never deletes" in one_error_line(proc) and "study" in one_error_line(proc)
    assert snapshot(tmp_path) == before  # nothing lost

    # `.` is the current folder (which holds the config)
    proc = main(capsys, "data", "materialize", "study/cfg.yaml", ".", "--n", "8", "--overwrite")
    assert proc.returncode != 0 and "current folder" in one_error_line(proc)
    assert snapshot(tmp_path) == before

    # a non-empty folder that is not a previous materialization (and holds no input)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.png").write_bytes(b"not a materialization")
    proc = main(capsys, "data", "materialize", cfg, other, "--n", "8", "--overwrite")
    assert proc.returncode != 0 and "not a previous materialization" in one_error_line(proc)
    assert (other / "holiday.png").read_bytes() == b"not a materialization"

    # a previous materialization is what --overwrite replaces
    out = tmp_path / "copy"
    assert main(capsys, "data", "materialize", cfg, out, "--n", "8").returncode == 0
    (out / "stale.txt").write_text("left over")
    proc = main(capsys, "data", "materialize", cfg, out, "--n", "4", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "meta.json").read_text())["n"] == 4
    assert snapshot(sweep) == {k[len("study/"):]: v for k, v in before.items()
                               if k.startswith("study/")}


# ---------------------------------------------------------------- 3. a run with checkpoints

def test_resweep_refuses_to_rewrite_a_run_that_has_checkpoints(tmp_path, capsys):
    base = tiny_config()
    sweep_file = write_sweep_file(tmp_path / "s.yaml", "resweep", base,
                                  axes={"model.width_per_group": [4, 8]})
    proc = main(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    assert proc.returncode == 0, proc.stderr
    sweep = tmp_path / "sweeps" / "resweep"
    started, fresh = sweep / "runs" / "w4", sweep / "runs" / "w8"
    # w4 was preempted after its first checkpoint: it resumes under this config
    ckpt = started / "checkpoints" / "000000005"
    ckpt.mkdir(parents=True)
    (ckpt / "COMPLETE").write_text("{}\n")
    (started / "state.json").write_text(json.dumps({"schema_version": 1,
                                                    "train": "preempted", "attempts": 1}))
    before = (started / "config.yaml").read_text()
    manifest = (sweep / "manifest.csv").read_text()

    base["optim"]["lr_per_256"] = 0.8  # the user edits the base and re-sweeps
    write_sweep_file(sweep_file, "resweep", base, axes={"model.width_per_group": [4, 8]})
    proc = main(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "run w4 has checkpoints" in line and "optim.lr_per_256: 0.4 -> 0.8" in line
    assert (started / "config.yaml").read_text() == before  # nothing rewritten
    assert "lr_per_256: 0.4" in (fresh / "config.yaml").read_text()
    assert (sweep / "manifest.csv").read_text() == manifest

    # removing the run (as the message says) lets the new config in
    import shutil

    shutil.rmtree(started)
    proc = main(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    assert proc.returncode == 0, proc.stderr
    assert "lr_per_256: 0.8" in (started / "config.yaml").read_text()


# ---------------------------------------------------------------- 5. same name, other study

def test_two_sweep_files_with_one_name_do_not_merge(tmp_path, capsys):
    a = write_sweep_file((tmp_path / "a").mkdir() or tmp_path / "a" / "s.yaml", "shared",
                         tiny_config(), axes={"model.width_per_group": [4]})
    b = write_sweep_file((tmp_path / "b").mkdir() or tmp_path / "b" / "s.yaml", "shared",
                         tiny_config(), axes={"data.vocab": [20]})
    root = tmp_path / "sweeps"
    assert main(capsys, "sweep", a, "--root", root).returncode == 0
    sweep = root / "shared"
    before = snapshot(sweep)
    proc = main(capsys, "sweep", b, "--root", root)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "name='shared' is already used by another sweep file" in line and str(a) in line
    assert snapshot(sweep) == before  # sweep.yaml, manifest and runs untouched
    # the same file, edited, is the same study
    write_sweep_file(a, "shared", tiny_config(), axes={"model.width_per_group": [4, 8]})
    assert main(capsys, "sweep", a, "--root", root).returncode == 0
    assert (sweep / "runs" / "w8" / "config.yaml").is_file()


# ---------------------------------------------------------------- 9. run ids read back

def test_a_run_id_that_climbs_out_of_the_sweep_is_refused_by_status_and_collect(tmp_path,
                                                                               capsys):
    mine = write_sweep(tmp_path, "mine", {"r0": {}})
    other = write_sweep(tmp_path, "other", {"x": {}})
    _done_run(other, "x")
    (mine / "manifest.csv").write_text("run_id\nr0\n../../other/runs/x\n")
    other_before = snapshot(other)
    for command in ("status", "collect"):
        proc = main(capsys, command, mine)
        assert proc.returncode != 0, (command, proc.stdout)
        line = one_error_line(proc)
        assert "'../../other/runs/x' is invalid" in line and "manifest.csv" in line
        assert "other/runs/x" not in proc.stdout
    assert not (mine / "results.parquet").exists()
    assert snapshot(other) == other_before


# ---------------------------------------------------------------- 20. sweep names

def test_sweep_names_with_shell_or_path_characters_are_refused_at_sweep(tmp_path, capsys):
    for name in ("a;b", "x$(touch PWNED)", "..", "a b", "we'ird"):
        sweep_file = write_sweep_file(tmp_path / "s.yaml", name, tiny_config(),
                                      axes={"model.width_per_group": [4]})
        proc = main(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
        assert proc.returncode == 2, name
        assert f"name={name!r} is invalid" in one_error_line(proc)
        assert not (tmp_path / "sweeps").exists() and not (tmp_path / "PWNED").exists()
