"""The whole study on a tiny sweep: sweep -> run --local -> collect -> report, via the CLI."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml


def scaling(*args, cwd):
    proc = subprocess.run([sys.executable, "-m", "scaling.cli", *args], capture_output=True,
                          text=True, timeout=1200, cwd=cwd)
    assert proc.returncode == 0, f"scaling {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_tiny_sweep_end_to_end_beats_the_random_trunk_and_reports(tmp_path, repo_root):
    base = yaml.safe_load((repo_root / "configs" / "base-cpu.yaml").read_text())
    base["precision"] = "fp32"  # the same numerics on every host (auto follows the CPU)
    base["model"].update(width_per_group=4)
    base["optim"].update(images_seen=8192)
    base["transfer"].update(train_images=1500, test_images=1500)
    base["checkpoint"].update(every_steps=20)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "base": "base.yaml",
        "axes": {"data.images": [500, 2000, 8000]}, "seeds": [0]}))

    scaling("sweep", "tiny.yaml", "--root", "sweeps", cwd=tmp_path)
    sweep = tmp_path / "sweeps" / "tiny"
    out = scaling("run", str(sweep), "--local", "--parallel", "2", "--progress", "false",
                  cwd=tmp_path)
    assert out.stdout.count("train=done") == 3, out.stdout
    report = scaling("report", str(sweep), cwd=tmp_path)

    df = pd.read_parquet(sweep / "results.parquet")
    assert len(df) == 3 and set(df.status) == {"done"}
    assert sorted(df.dataset_images) == [500, 2000, 8000]
    # beats the random trunk by more than the noise: the binomial standard error of the
    # difference of two top-1s on 1500 test images is ~1.8 points at 50%
    p, q = df.top1 / 100, df.floor_top1 / 100
    se = 100 * ((p * (1 - p) + q * (1 - q)) / 1500) ** 0.5
    gain = df.top1 - df.floor_top1
    table = df[["run_id", "top1", "floor_top1"]].assign(se=se)
    assert (gain > se).all() and gain.mean() > 2 * se.mean(), table
    html = (sweep / "report" / "report.html").read_text()
    assert "<img" in html and "points gained per 10x" in html.lower()
    assert (sweep / "report" / "figures" / "scaling.png").is_file()
    assert str(sweep / "report" / "report.html") in report.stdout
    # a second run has nothing left to do and leaves the finished runs untouched
    before = (sweep / "runs" / df.run_id[0] / "final" / "trunk.pt").stat().st_mtime_ns
    again = scaling("run", str(sweep), "--local", cwd=tmp_path)
    assert "0 runs to do" in again.stdout
    assert (sweep / "runs" / df.run_id[0] / "final" / "trunk.pt").stat().st_mtime_ns == before
