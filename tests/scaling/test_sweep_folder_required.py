"""Every command given a sweep folder agrees on what one is (the folder `scaling sweep`
made: it holds sweep.yaml) and on the answer when it is not: one `error:` line, exit 2
(bad input), nothing written there. A folder that merely holds manifest.csv and runs/ is
someone else's; one folder named twice is read once."""

from __future__ import annotations

import pytest

from tests.helpers.cli_checks import cli, fake_sweep, make_run, tree

SWEEP_COMMANDS = [("status",), ("collect",), ("fit",), ("report",), ("run", "--local"),
                  ("submit", "--dry_run"), ("cancel",)]


def _foreign(tmp_path):
    """manifest.csv and runs/ (what an unrelated tool might keep), no sweep.yaml."""
    folder = tmp_path / "foreign"
    (folder / "runs" / "r0").mkdir(parents=True)
    (folder / "runs" / "r0" / "config.yaml").write_text("name: r0\n")
    (folder / "manifest.csv").write_text("run_id\nr0\n")
    return folder


@pytest.mark.parametrize("command", SWEEP_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("kind", ["missing", "empty", "foreign"])
def test_a_folder_that_is_not_a_sweep_is_bad_input_for_every_command(tmp_path, capsys,
                                                                      command, kind):
    folder = {"missing": lambda: tmp_path / "nope", "foreign": lambda: _foreign(tmp_path),
              "empty": lambda: tmp_path}[kind]()
    before = tree(tmp_path)
    code, _, line = cli(capsys, *command[:1], folder, *command[1:])
    assert code == 2, line
    why = "does not exist" if kind == "missing" else "is not a sweep folder (no sweep.yaml"
    assert line.startswith(f"error: {folder} {why}") and "made by `scaling sweep`" in line
    assert tree(tmp_path) == before  # nothing written: no report/, no results.parquet
    assert not (folder / "report").exists()


def test_the_data_commands_refuse_a_folder_given_as_a_run_config_with_exit_2(tmp_path, capsys):
    sweep = fake_sweep(tmp_path)
    for action in ("materialize", "dedup"):
        code, _, line = cli(capsys, "data", action, sweep, tmp_path / "out")
        assert code == 2 and line == (f"error: config file {str(sweep)!r} is a folder: give a "
                                      "run's config.yaml (e.g. a sweep's "
                                      "runs/<run_id>/config.yaml)")
    assert not (tmp_path / "out").exists()
    run = make_run(tmp_path / "sweep2" / "runs", "r0")  # the advice: a run's config.yaml
    code, out, line = cli(capsys, "data", "materialize", run / "config.yaml", tmp_path / "out",
                          "--n", "8")
    assert code == 0 and line == "" and any((tmp_path / "out").glob("*.tar"))


def test_the_advice_leads_to_a_sweep_that_collects(tmp_path, capsys):
    """'give a folder made by `scaling sweep`': the fake sweep is laid out as that command
    lays it out (sweep.yaml included), and is accepted."""
    sweep = fake_sweep(tmp_path)
    code, out, line = cli(capsys, "collect", sweep)
    assert code == 0 and line == "" and (sweep / "results.parquet").is_file()


def test_collect_of_one_sweep_named_twice_counts_each_run_once(tmp_path, capsys):
    sweep = fake_sweep(tmp_path)
    code, out, _ = cli(capsys, "collect", sweep, sweep)
    assert code == 0 and out.strip() == "2 rows from 1 sweep(s)"
    code, out, _ = cli(capsys, "collect", sweep, tmp_path / "." / sweep.name)
    assert code == 0 and out.strip() == "2 rows from 1 sweep(s)"
    from analysis import load_results

    assert len(load_results(sweep)) == 2
