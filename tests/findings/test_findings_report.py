"""The report's Findings section: verdicts computed from the sweep, written to
findings.json, and a bad findings config stopped before any notebook cell runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from analysis import report
from analysis.fakes import make_sweep
from analysis.findings import FAILS, HOLDS, NOT_ENOUGH
from analysis.findings_config import FindingsConfigError


@pytest.mark.slow
def test_report_has_a_findings_section_computed_from_the_sweep(tmp_path):
    sweep = make_sweep(tmp_path, vocabs=("all", 1000), ablations=True, problems=False,
                       targets=("fine", "novel"), protocols=("linear", "finetune"))
    html = report(sweep, n_boot=20, n_boot_nonlinear=2, budget_hours=5.0,
                  timeout_s=1800).read_text()  # per cell: a loaded 2-core machine is slow
    doc = json.loads((sweep / "report" / "findings.json").read_text())
    verdicts = {f["number"]: f["verdict"] for f in doc["findings"]}
    # the fabricated laws: log-linear, steeper when wider, sqrt +5, finetune +3; noise
    # costs 8 points per unit, so 25% costs only 1.2 more than 10%, inside the noise of 3
    # seeds (sd 0.5 per run); no coarse target was run
    assert verdicts == {1: HOLDS, 2: HOLDS, 3: NOT_ENOUGH, 4: HOLDS, 5: FAILS, 6: HOLDS}, doc
    assert doc["schema_version"] == 1 and doc["sweep"] == "fake"
    assert "<h2" in html and "Findings" in html and "b (width 16)" in html
    for f in doc["findings"]:
        assert f"{f['number']}. {f['title']}: {f['verdict']}." in html


@pytest.mark.integration
def test_bad_findings_config_fails_before_the_notebook_runs(tmp_path):
    sweep = make_sweep(tmp_path, problems=False)
    bad = tmp_path / "findings.yaml"
    bad.write_text("loglinear: {min_slop: 1}\n")
    with pytest.raises(FindingsConfigError, match="did you mean 'loglinear.min_slope'"):
        report(sweep, findings_config=bad)
    assert not (sweep / "report" / "report.ipynb").exists()
    proc = subprocess.run([sys.executable, "-m", "scaling.cli", "report", str(sweep),
                           "--findings", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "loglinear.min_slop" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_report_of_a_registered_replicate_sweep_says_so(tmp_path):
    """A replicate sweep (worlds 100-105) registered in a registry: the header names the
    worlds and the generator-level claim, the Findings header says "registered", and
    findings.json carries the status and the hashes. The same sweep against an empty
    registry is exploratory."""
    import yaml

    from analysis import registry as R

    sweep = make_sweep(tmp_path, vocabs=("all",), images=(1000, 10000, 100000),
                       targets=("fine",), problems=False, replicates=6, world_sd=1.0)
    registry = tmp_path / "registry.yaml"
    own = R.hashes(sweep)
    registry.write_text(yaml.safe_dump([{
        "id": "fake-1", "date": "2026-12-07", "sweep": "fake.yaml",
        "worlds": list(range(100, 106)), "sha256": own, "reason": "a test"}]))
    html = report(sweep, n_boot=20, n_boot_nonlinear=2, budget_hours=5.0, timeout_s=1800,
                  registry=registry).read_text()
    doc = json.loads((sweep / "report" / "findings.json").read_text())
    assert doc["registration"]["status"] == "registered" and doc["registration"]["sha256"] == own
    assert doc["unit"] == "replicate" and doc["worlds"] == list(range(100, 106))
    assert "registered fake-1 on 2026-12-07" in html
    assert "data seeds 100-105 (6 worlds: the claims are about a random world of this " \
           "generator)" in html
    empty = tmp_path / "empty.yaml"
    empty.write_text("[]\n")
    html = report(sweep, n_boot=20, n_boot_nonlinear=2, budget_hours=5.0, timeout_s=1800,
                  registry=empty).read_text()
    assert f"exploratory (not registered: {empty} has no entries)" in html
    assert json.loads((sweep / "report" / "findings.json").read_text())[
        "registration"]["status"] == "exploratory"


def test_a_malformed_registry_fails_before_the_notebook_runs(tmp_path):
    from analysis.registry import RegistryError

    sweep = make_sweep(tmp_path, problems=False)
    bad = tmp_path / "registry.yaml"
    bad.write_text("- {idd: x}\n")
    with pytest.raises(RegistryError, match="unknown field 'idd'"):
        report(sweep, registry=bad)
    assert not (sweep / "report" / "report.ipynb").exists()
