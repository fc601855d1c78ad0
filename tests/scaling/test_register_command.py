"""`scaling register SWEEP_DIR --id ID --reason WHY` prints the registry entry of a study
none of whose runs has started; pasted into the registry, it makes that sweep's report
"registered". A started sweep, a missing reason or a taken id is one line, exit 2."""

from __future__ import annotations

import json

import pytest
import yaml

from analysis.registry import load_registry, registration
from scaling.cli import main
from tests.helpers.slurm_runs import write_sweep


def _register(capsys, *args):
    code = main(["register", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_printed_entry_pasted_into_the_registry_registers_the_sweep(tmp_path, capsys):
    sweep = write_sweep(tmp_path, "s", {"a": {"data.seed": 100, "seed": 0},
                                        "b": {"data.seed": 101, "seed": 1}})
    registry = tmp_path / "registry.yaml"
    registry.write_text("# registered studies\n[]\n")
    assert not registration(sweep, None, registry).registered
    code, out, err = _register(capsys, sweep, "--id", "study-1", "--reason",
                               "finding 5 judged in images", "--registry", registry)
    assert code == 0, err
    entry, = yaml.safe_load(out)
    assert entry["id"] == "study-1" and entry["worlds"] == [100, 101]
    assert entry["reason"] == "finding 5 judged in images"
    registry.write_text("# registered studies\n" + out)  # the paste
    assert load_registry(registry)[0]["id"] == "study-1"
    reg = registration(sweep, None, registry)
    assert reg.registered and reg.line == f"registered study-1 on {entry['date']}"
    # the same id again is refused: a changed design is a new study with a new id
    code, _, err = _register(capsys, sweep, "--id", "study-1", "--reason", "again",
                             "--registry", registry)
    assert code == 2 and err.count("\n") == 1 and "--id='study-1' is already registered" in err
    code, out, _ = _register(capsys, sweep, "--id", "study-2", "--reason", "again",
                             "--registry", registry)
    assert code == 0 and yaml.safe_load(out)[0]["id"] == "study-2"


@pytest.mark.parametrize("started", ["state.json", "checkpoints", "metrics.jsonl"])
def test_a_sweep_with_a_started_run_is_refused_in_one_line(tmp_path, capsys, started):
    sweep = write_sweep(tmp_path, "s", {"a": {}, "b": {"seed": 1}})
    path = sweep / "runs" / "b" / started
    if started == "checkpoints":
        path.mkdir()
    else:
        path.write_text(json.dumps({"train": "running"}))
    code, out, err = _register(capsys, sweep, "--id", "x", "--reason", "r")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: ") and "1 run(s) already started (e.g. b)" in err
    assert "scaling sweep FILE --root NEW_ROOT" in err


@pytest.mark.parametrize("args, message", [
    (["--reason", "r"], "--id=None is invalid: name the study"),
    (["--id", "a/b", "--reason", "r"], "--id='a/b' is invalid"),
    (["--id", "x"], "--reason=None is invalid: say in one line why"),
])
def test_missing_or_bad_options_are_one_line(tmp_path, capsys, args, message):
    sweep = write_sweep(tmp_path, "s", {"a": {}})
    code, out, err = _register(capsys, sweep, *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_a_malformed_registry_stops_register_in_one_line(tmp_path, capsys):
    sweep = write_sweep(tmp_path, "s", {"a": {}})
    bad = tmp_path / "registry.yaml"
    bad.write_text("- {idd: x}\n")
    code, _, err = _register(capsys, sweep, "--id", "x", "--reason", "r", "--registry", bad)
    assert code == 2 and err.count("\n") == 1 and "unknown field 'idd'" in err, err


@pytest.mark.slow
def test_the_advice_a_fresh_sweep_folder_can_be_registered(tmp_path, capsys, repo_root):
    """The refusal's fix works: `scaling sweep FILE --root NEW_ROOT` gives a folder with the
    same design hash that `register` accepts."""
    from scaling.sweep import expand_sweep

    spec = {"name": "reg", "base": str(repo_root / "configs" / "base-cpu.yaml"),
            "replicates": {"worlds_from": 100, "count": 2},
            "axes": {"model.width_per_group": [4]}}
    sweep_file = tmp_path / "reg.yaml"
    sweep_file.write_text(yaml.safe_dump(spec))
    first = expand_sweep(sweep_file, tmp_path / "a")
    (first / "runs" / "w4-r0" / "state.json").write_text('{"train": "running"}')
    code, _, err = _register(capsys, first, "--id", "x", "--reason", "r")
    assert code == 2 and "already started" in err
    fresh = expand_sweep(sweep_file, tmp_path / "b")
    code, out, err = _register(capsys, fresh, "--id", "x", "--reason", "r",
                               "--registry", tmp_path / "none.yaml")
    assert code == 2 and "does not exist" in err  # an explicit registry must exist
    code, out, err = _register(capsys, fresh, "--id", "x", "--reason", "r")
    assert code == 0, err
    entry, = yaml.safe_load(out)
    assert entry["worlds"] == [100, 101] and entry["sweep"] == str(sweep_file)
    from analysis.registry import design_hash

    assert entry["sha256"]["design"] == design_hash(first)


def test_scaling_report_prints_the_registration_line(tmp_path, capsys, monkeypatch):
    """`scaling report` ends with the Findings header's first line (the notebook itself is
    replaced here: tests/findings/test_findings_report.py executes it)."""
    import analysis

    sweep = write_sweep(tmp_path, "s", {"a": {}})
    registry = tmp_path / "registry.yaml"
    registry.write_text("[]\n")
    monkeypatch.setattr(analysis, "report", lambda *a, **k: tmp_path / "report.html")
    assert main(["report", str(sweep), "--registry", str(registry)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"findings: exploratory (not registered: {registry} has " \
                                   "no entries)"
    code, entry, err = _register(capsys, sweep, "--id", "s-1", "--reason", "r",
                                 "--registry", registry)
    assert code == 0, err
    registry.write_text(entry)  # the paste
    assert main(["report", str(sweep), "--registry", str(registry)]) == 0
    date = yaml.safe_load(entry)[0]["date"]
    assert capsys.readouterr().out.splitlines()[-1] == f"findings: registered s-1 on {date}"
