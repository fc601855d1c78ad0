"""`scaling fit` can say what `analysis.fit_groups` can: a joint law over several x
columns, the grouping, the frontier and the units; a column it cannot fit (text, or
empty) is named in one line; and an error law fitted to an accuracy warns, as the Python
API does."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest

from analysis import collect, fit_groups
from analysis.fakes import make_sweep
from analysis.fit import FitWarning
from tests.helpers.cli_checks import cli
from tests.helpers.slurm_runs import scaling


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return make_sweep(tmp_path_factory.mktemp("fit"), vocabs=(1000,), targets=("fine", "coarse"),
                      problems=False)


def _table(out: str) -> pd.DataFrame:
    return pd.read_fwf(io.StringIO(out))


@pytest.mark.parametrize("y,why", [
    ("sweep", "the column holds text (e.g. 'fake'), not numbers"),
    ("top1_dedup", "the column is empty in the 36 rows fitted"),
])
def test_a_column_without_numbers_is_named_in_one_line(sweep, capsys, y, why):
    code, _, line = cli(capsys, "fit", sweep, "--y", y)
    assert code == 2 and line.startswith(f"error: y={y!r} is invalid: {why}")
    code, _, line = cli(capsys, "fit", sweep, "--x", "arch", "--y", "top1")
    assert code == 2 and line.startswith("error: x='arch' is invalid: the column holds text")
    code, _, line = cli(capsys, "fit", sweep, "--y", "top1")  # the advice: a numeric column
    assert code == 0 and line == ""


def test_the_joint_law_takes_two_x_columns_joined_by_a_comma(sweep, capsys):
    code, out, line = cli(capsys, "fit", sweep, "--x", "params,dataset_images", "--y",
                          "error", "--law", "joint", "--by", "vocab,target", "--n_boot", "0")
    assert code == 0 and line == ""
    table = _table(out)
    expected = fit_groups(collect(sweep, write=False), x=["params", "dataset_images"],
                          y="error", law="joint", by=["vocab", "target"], n_boot=0)
    assert list(table["law"]) == ["joint"] * 2 and list(table["n"]) == list(expected["n"])
    assert table["alpha"].to_numpy() == pytest.approx(expected["alpha"].to_numpy(), rel=1e-4)


def test_an_error_law_fitted_to_an_accuracy_warns_in_the_cli_and_the_api(sweep, capsys):
    code, out, line = cli(capsys, "fit", sweep, "--law", "power", "--y", "top1")
    err = capsys.readouterr().err  # cli() has read it: run the API for the warning text
    with pytest.warns(FitWarning, match=r"top1 rises with dataset_images \(Spearman \+0\.\d\d\) "
                      r"but the power law describes an error that falls: fit y=error"):
        fit_groups(collect(sweep, write=False), law="power", y="top1", n_boot=0)
    assert code == 0 and "fit y=error" in out and err == ""
    # the advice, followed: fitted to the error, nothing to warn about
    import warnings

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit_groups(collect(sweep, write=False), law="power", y="error", n_boot=0)
    assert not [w for w in record if "rises with" in str(w.message)]


@pytest.mark.slow
def test_the_warning_reaches_stderr_as_one_line(sweep):
    proc = scaling("fit", sweep, "--law", "power", "--by", "width", check=False, timeout=900)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines  # one per distinct text (the widths' Spearman may differ)
    for line in lines:
        assert re.fullmatch(r"warning: power fit of top1: top1 rises with dataset_images "
                            r"\(Spearman \+0\.\d\d\) but the power law describes an error "
                            r"that falls: fit y=error \(100 - top-1\), or an accuracy law "
                            r"such as loglinear", line), line


def test_by_frontier_best_and_units_reach_fit_groups(sweep, capsys):
    code, out, _ = cli(capsys, "fit", sweep, "--x", "pretrain_flops", "--y", "error",
                       "--law", "power", "--by", "", "--frontier_bins", "4", "--best", "min",
                       "--units", "percent")
    assert code == 0
    table = _table(out)
    expected = fit_groups(collect(sweep, write=False), x="pretrain_flops", y="error",
                          law="power", by=(), frontier_bins=4, best="min", units="percent")
    assert len(table) == 1 and int(table["n"][0]) == int(expected["n"][0]) == 4
    assert float(table["b"][0]) == pytest.approx(float(expected["b"][0]), rel=1e-4)
    code, out, _ = cli(capsys, "fit", sweep, "--by", "target")
    assert code == 0 and sorted(_table(out)["target"]) == ["coarse", "fine"]
    code, _, line = cli(capsys, "fit", sweep, "--x", "pretrain_flops", "--y", "error",
                        "--law", "power", "--frontier_bins", "4", "--best", "lowest")
    assert code == 2 and "best='lowest'" in line
