"""Registration: a study's three hashes (findings rules, expanded design, generator
defaults) are stable for the same inputs and each changes with exactly its own input; the
report's Findings header says "registered <id> on <date>" only when one registry entry has
all three, and names the hash that differs otherwise; a malformed registry is one line."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
import yaml

from analysis import registry as R
from analysis.collect import collect
from analysis.fakes import make_sweep
from analysis.findings import findings
from analysis.registry import RegistryError, load_registry, registration
from analysis.report import findings_header, world_line
from tests.helpers.slurm_runs import write_sweep

FAST = {"n_boot": 200}


def _hashes(sweep, findings_config=None):
    return R.hashes(sweep, findings_config)


def test_the_same_folder_gives_the_same_hashes(tmp_path):
    sweep = write_sweep(tmp_path, "s", {"a": {"seed": 0}, "b": {"seed": 1}})
    first = _hashes(sweep)
    assert _hashes(sweep) == first
    assert all(len(v) == 64 for v in first.values())
    # the same design written again elsewhere (another folder, another machine's
    # resources) hashes the same: resources and logging are not part of a run's config hash
    again = write_sweep(tmp_path / "other", "s", {"a": {"seed": 0, "resources.mem_gb": 64},
                                                  "b": {"seed": 1}})
    assert _hashes(again) == first


def test_a_changed_config_value_changes_only_the_design_hash(tmp_path):
    before = _hashes(write_sweep(tmp_path / "1", "s", {"a": {"seed": 0}, "b": {"seed": 1}}))
    after = _hashes(write_sweep(tmp_path / "2", "s", {"a": {"seed": 0}, "b": {"seed": 2}}))
    assert [k for k in R.HASHES if before[k] != after[k]] == ["design"]
    renamed = _hashes(write_sweep(tmp_path / "3", "s", {"a": {"seed": 0}, "c": {"seed": 1}}))
    assert [k for k in R.HASHES if before[k] != renamed[k]] == ["design"]


def test_a_changed_rule_changes_only_the_findings_hash(tmp_path):
    sweep = write_sweep(tmp_path, "s", {"a": {}})
    before = _hashes(sweep)
    rules = tmp_path / "rules.yaml"
    rules.write_text("label_noise: {little_in: points}\n")
    after = _hashes(sweep, rules)
    assert [k for k in R.HASHES if before[k] != after[k]] == ["findings"]
    # the shipped file and its defaults written out in full are the same rules
    assert _hashes(sweep, {}) == before


def test_a_changed_world_default_changes_only_the_generator_hash(tmp_path, monkeypatch):
    sweep = write_sweep(tmp_path, "s", {"a": {}})
    before = _hashes(sweep)
    defaults = dataclasses.asdict(R.WorldConfig())
    changed = dataclasses.make_dataclass(  # the same knobs, one default changed
        "WorldConfig", [(name, type(value), dataclasses.field(
            default=1.1 if name == "zipf_exponent" else value))
            for name, value in defaults.items()])
    monkeypatch.setattr(R, "WorldConfig", changed)
    after = _hashes(sweep)
    assert [k for k in R.HASHES if before[k] != after[k]] == ["generator"]
    monkeypatch.undo()
    monkeypatch.setattr(R, "GENERATOR_VERSION", R.GENERATOR_VERSION + 1)
    bumped = _hashes(sweep)
    assert [k for k in R.HASHES if before[k] != bumped[k]] == ["generator"]


def _entry(sweep, **over) -> dict:
    entry = {"id": "study-1", "date": "2026-12-07", "sweep": "configs/s.yaml",
             "worlds": R.sweep_worlds(sweep), "sha256": _hashes(sweep), "reason": "a test"}
    entry.update(over)
    return entry


def _registry(tmp_path, *entries, name="registry.yaml"):
    path = tmp_path / name
    path.write_text("# header\n" + yaml.safe_dump(list(entries), sort_keys=False))
    return path


def _found(sweep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collect's and the fits' warnings: not tested here
        return findings(collect(sweep, write=False), FAST)


def _header(sweep, path):
    return findings_header(_found(sweep), registration(sweep, None, path))


def test_the_findings_header_says_registered_or_which_hash_differs(tmp_path):
    sweep = make_sweep(tmp_path, replicates=3, problems=False)
    path = _registry(tmp_path, _entry(sweep))
    header = _header(sweep, path)
    assert header.startswith("**registered study-1 on 2026-12-07.**")
    assert "a random world of this generator (worlds 100-102" in header
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = collect(sweep, write=False)
    assert world_line(df) == ("data seeds 100-102 (3 worlds: the claims are about a random "
                              "world of this generator)")

    other = dict(_hashes(sweep), design="0" * 64)
    path = _registry(tmp_path, _entry(sweep, id="old", sha256=other),
                     _entry(sweep, id="rules", sha256=dict(_hashes(sweep), findings="1" * 64)),
                     name="two.yaml")
    reg = registration(sweep, None, path)  # the closest entry is named: 2 of 3 hashes equal
    assert not reg.registered
    assert reg.why_not == "findings rules hash differs from entry 'rules'"
    header = _header(sweep, path)
    assert header.startswith("**exploratory (not registered: findings rules hash differs "
                             "from entry 'rules').**")
    path = _registry(tmp_path, _entry(sweep, id="old", sha256=dict(
        _hashes(sweep), design="0" * 64, generator="2" * 64)), name="one.yaml")
    assert registration(sweep, None, path).line == (
        "exploratory (not registered: design and generator defaults hashes differ from "
        "entry 'old')")


def test_one_world_and_no_registry_are_said_in_the_header(tmp_path):
    sweep = make_sweep(tmp_path, world=43, problems=False)
    empty = _registry(tmp_path, name="empty.yaml")
    header = _header(sweep, empty)
    assert header.startswith(f"**exploratory (not registered: {empty} has no entries).**")
    assert "world 43 only (one world of this generator)" in header
    assert "training seeds on one world" in header
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = collect(sweep, write=False)
    assert world_line(df) == "data seed 43"
    # the repository's registry: an unregistered sweep names the entry whose hash differs
    assert registration(sweep, None, None).line.startswith(
        "exploratory (not registered: design hash differs from entry 'paper-mini-r3-")


def test_findings_json_carries_the_registration_and_its_hashes(tmp_path):
    from analysis.report import write_findings

    sweep = make_sweep(tmp_path, replicates=3, problems=False)
    reg = registration(sweep, None, _registry(tmp_path, _entry(sweep)))
    found = _found(sweep)
    doc = json.loads(write_findings(found, tmp_path / "f.json", sweep="fake",
                                    registration=reg.to_dict()).read_text())
    assert doc["registration"]["status"] == "registered"
    assert doc["registration"]["sha256"] == _hashes(sweep)
    assert doc["unit"] == "replicate" and doc["worlds"] == [100, 101, 102]


@pytest.mark.parametrize("text, message", [
    ("- [1, 2\n", r"registry.yaml \(line \d+\) is not valid YAML"),
    ("id: x\n", r"registry.yaml='dict' is invalid: the registry is a YAML list"),
    ("- 3\n", r"entry 0=3 is invalid: use a mapping"),
    ("- {id: x}\n", r"entry 0 lacks date, sweep, worlds, sha256, reason"),
    ("- {idd: x}\n", r"entry 0: unknown field 'idd': did you mean 'id'"),
])
def test_a_malformed_registry_is_one_line(tmp_path, text, message):
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    with pytest.raises(RegistryError, match=message) as caught:
        load_registry(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("field, value, message", [
    ("date", "yesterday", r"entry 'study-1'.date='yesterday' is invalid: use an ISO date"),
    ("worlds", [], r"entry 'study-1'.worlds=\[\] is invalid"),
    ("sha256", {"design": "x"}, r"entry 'study-1'.sha256=.* use a mapping with exactly"),
    ("reason", "", r"entry 'study-1'.reason='' is invalid"),
])
def test_a_malformed_entry_names_its_field(tmp_path, field, value, message):
    sweep = write_sweep(tmp_path, "s", {"a": {}})
    good = _entry(sweep)
    load_registry(_registry(tmp_path, good))  # the valid entry loads
    path = _registry(tmp_path, {**good, field: value})
    with pytest.raises(RegistryError, match=message):
        load_registry(path)
    bad_hash = {**good, "sha256": {**good["sha256"], "design": "abc"}}
    with pytest.raises(RegistryError, match=r"sha256.design='abc' is invalid: use the 64"):
        load_registry(_registry(tmp_path, bad_hash))
    with pytest.raises(RegistryError, match="registered twice"):
        load_registry(_registry(tmp_path, good, good))


def test_a_damaged_run_config_leaves_the_report_exploratory_not_broken(tmp_path):
    sweep = write_sweep(tmp_path, "s", {"a": {}, "b": {"seed": 1}})
    path = _registry(tmp_path, _entry(sweep))
    assert registration(sweep, None, path).registered
    (sweep / "runs" / "b" / "config.yaml").write_text("model: {depht: 3}\n")
    reg = registration(sweep, None, path)
    assert not reg.registered and reg.line.startswith(
        "exploratory (not registered: the study cannot be hashed: ")
    assert "depht" in reg.line and "\n" not in reg.line


@pytest.mark.slow
def test_the_shipped_paper_mini_is_its_newest_registered_study(tmp_path):
    """configs/paper-mini.yaml, configs/findings.yaml and the generator hash to the newest
    registry entry of that sweep file: a change to any of them (or to how run configs are
    hashed) makes `make paper-mini` exploratory, and must come with a new entry."""
    from tests.helpers.slurm_runs import scaling

    entries = [e for e in load_registry() if e["sweep"] == "configs/paper-mini.yaml"]
    assert entries, "no registered paper-mini study"
    repo = R.DEFAULT_REGISTRY.parents[1]
    scaling("sweep", repo / "configs" / "paper-mini.yaml", "--root", tmp_path, timeout=600)
    sweep = tmp_path / "paper-mini"
    assert R.hashes(sweep) == entries[-1]["sha256"]
    assert R.sweep_worlds(sweep) == entries[-1]["worlds"]
    assert registration(sweep, None, None).line.startswith(f"registered {entries[-1]['id']}")
