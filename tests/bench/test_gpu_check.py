"""The prepared GPU script runs end to end on the CPU (`--dry_run`), so the one session
lent a GPU does not spend its minutes on a broken script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_dry_run_measures_every_case_against_the_plain_loop(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry_run"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_bench.json").read_text())
    cases = {c["case"]: c for c in result["cases"]}
    assert {"plain NCHW", "plain channels_last", "engine ddp NCHW", "engine ddp channels_last",
            "engine fsdp2 channels_last", "engine deepspeed z2 channels_last"} <= set(cases)
    assert not result["failures"]
    assert all(c["images_per_s"] > 0 for c in cases.values())
    ratios = {r["case"]: r for r in result["ratios"]}
    assert ratios["engine ddp channels_last"]["baseline"] == "plain channels_last"
    assert json.loads((tmp_path / "env.json").read_text())["torch"]
