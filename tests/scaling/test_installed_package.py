"""A wheel carries what the commands read by default: the demo's sweep (and the base it
names), the findings rules and the study registry, so `scaling demo` and `scaling report`
work from an installed package and not only from a checkout."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CHECK = """
import json
from pathlib import Path
import analysis.findings_config as f, analysis.registry as r, scaling.api as a
from analysis.findings_config import load_findings_config
from analysis.registry import load_registry
paths = [f.DEFAULT_PATH, r.DEFAULT_REGISTRY, a.DEMO_SWEEP, a.DEMO_SWEEP.parent / "base-cpu.yaml"]
print(json.dumps({"paths": [str(p) for p in paths], "exist": [p.is_file() for p in paths],
                  "findings": load_findings_config(None).vocabulary.control,
                  "registered": [e["id"] for e in load_registry(r.DEFAULT_REGISTRY)]}))
"""


def test_a_wheel_ships_the_demo_sweep_the_findings_rules_and_the_registry(tmp_path):
    import json
    import shutil
    from pathlib import Path

    # a copy without build/ or *.egg-info: a stale build folder would ship old files
    repo = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parents[2], repo, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info",
                                                  "sweeps*", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(repo)],
                   check=True, capture_output=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("*.whl"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=600)
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(got["exist"]), got
    assert all(p.startswith(str(target)) for p in got["paths"]), got  # not the checkout's
    assert got["findings"] == "random" and "paper-mini-r3-2026-12-07" in got["registered"]
