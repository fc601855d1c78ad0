"""A findings config's values are checked like its keys: a typo in a target, protocol,
scheme or vocabulary is one line naming the field, the value and the choices (not a
silent 'not enough runs'); n_boot is bounded; an unreadable or empty file is named. Each
message's advice is followed and leads to a config that loads."""

from __future__ import annotations

import pytest

from analysis.fakes import make_sweep
from analysis.findings_config import DEFAULT_PATH, FindingsConfig, load_findings_config
from tests.helpers.cli_checks import cli, tree


@pytest.fixture
def sweep(tmp_path):
    return make_sweep(tmp_path, widths=(4,), vocabs=(1000,), images=(1000, 10000),
                      seeds=(0,), targets=("fine",), problems=False)


TYPOS = [
    ("loglinear:\n  protocol: linaer\n", "loglinear.protocol='linaer' is invalid: use one of "
     "linear, finetune, fewshot: did you mean 'linear'?", ("linaer", "linear")),
    ("resampling:\n  schemes: [sqrtt]\n", "resampling.schemes='sqrtt' is invalid: use one of "
     "natural, sqrt, uniform: did you mean 'sqrt'?", ("sqrtt", "sqrt")),
    ("baseline:\n  vocab: al\n", "baseline.vocab='al' is invalid: use all, a vocabulary size "
     "K or matched:<target>, random:K: did you mean 'all'?", ("vocab: al", "vocab: all")),
    ("finetune:\n  better: fine-tune\n", "finetune.better='fine-tune' is invalid: use one of "
     "linear, finetune, fewshot: did you mean 'finetune'?", ("fine-tune", "finetune")),
    ("vocabulary:\n  large: larges\n", "vocabulary.large='larges' is invalid: use all, "
     "largest, a vocabulary size K or matched:<target>, random:K: did you mean 'largest'?",
     ("larges", "largest")),
    ("n_boot: 2000000000\n", "n_boot=2000000000 is invalid: use 100 to 100000 replicates",
     ("2000000000", "2000")),
]


@pytest.mark.parametrize("text,message,fix", TYPOS, ids=lambda v: str(v)[:14])
def test_a_mistyped_value_is_one_line_with_the_choices(tmp_path, capsys, sweep, text,
                                                       message, fix):
    path = tmp_path / "findings.yaml"
    path.write_text(text)
    before = tree(sweep)
    code, _, line = cli(capsys, "report", sweep, "--findings", path)
    assert code == 2 and line == f"error: {message}"
    assert tree(sweep) == before  # refused before anything is written
    path.write_text(text.replace(*fix))  # the advice, followed
    assert isinstance(load_findings_config(path), FindingsConfig)


def test_a_target_the_sweep_did_not_run_is_named_with_the_sweeps_targets(tmp_path, capsys,
                                                                         sweep):
    path = tmp_path / "findings.yaml"
    path.write_text("finetune:\n  target: imagenet\n")
    code, _, line = cli(capsys, "report", sweep, "--findings", path)
    assert code == 2 and line == ("error: finetune.target='imagenet' is invalid: the sweep has "
                                  "no such target: use one of coarse, fine, novel")
    assert not (sweep / "report" / "report.ipynb").exists()
    from analysis import collect
    from analysis.findings import findings

    df = collect(sweep, write=False)
    path.write_text("finetune:\n  target: novel\n")  # a synthetic target is always a name
    assert len(findings(df, path).findings) == 6
    df.loc[df.target == "fine", "target"] = "imagenet"  # a sweep that ran such a target
    path.write_text("finetune:\n  target: imagenet\n")
    assert len(findings(df, path).findings) == 6


def test_a_target_that_cannot_be_a_name_is_refused_on_load(tmp_path):
    from analysis.findings_config import FindingsConfigError

    with pytest.raises(FindingsConfigError, match=r"wider.target='hf:/x' is invalid: use a "
                       r"target's name: fine, coarse, novel or the name of one"):
        load_findings_config({"wider": {"target": "hf:/x"}})


def test_a_findings_file_that_is_not_utf8_is_named(tmp_path, capsys, sweep):
    path = tmp_path / "findings.yaml"
    path.write_bytes("# caf\xe9\nmin_seeds: 3\n".encode("latin-1"))
    code, _, line = cli(capsys, "report", sweep, "--findings", path)
    assert code == 2 and line == f"error: {path} is not UTF-8 text (byte 5): save it as UTF-8"
    path.write_text("# caf\xe9\nmin_seeds: 3\n", encoding="utf-8")
    assert load_findings_config(path).min_seeds == 3


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "---\n"])
def test_an_empty_findings_file_is_refused_not_read_as_the_defaults(tmp_path, capsys, sweep,
                                                                     text):
    path = tmp_path / "findings.yaml"
    path.write_text(text)
    code, _, line = cli(capsys, "report", sweep, "--findings", path)
    assert code == 2 and line == (f"error: {path} is empty: write the fields to change (e.g. "
                                  "`min_seeds: 3`), or leave out --findings for the shipped "
                                  "findings.yaml")
    path.write_text(text + "min_seeds: 3\n")  # the advice, both ways
    assert load_findings_config(path).min_seeds == 3
    assert load_findings_config(None) == load_findings_config(DEFAULT_PATH)
