"""The control-plane benchmarks build paper-scale sweeps (3.5B images, 10,000 runs): their
configs must stay valid as validation tightens, or `make bench` breaks where no other test
looks. Each runs at a small size here; the figures themselves are never asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def bench(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_paper_grid_expands_and_renders_without_torch():
    out = bench("bench_submit.py", "--repeat", "1")
    assert "paper grid: 60 runs" in out and "invalid: none" in out
    assert "torch imported by submit --dry_run: False" in out


@pytest.mark.slow
def test_control_plane_bench_expands_renders_collects_and_fits_without_invalid_configs():
    out = bench("bench_control.py", "--runs", "400", "--baseline", "100", "--rounds", "1")
    for stage in ("expand + estimate", "render", "collect", "fit"):
        assert stage in out
    assert "CollectWarning" not in out  # every fabricated run's config is valid
