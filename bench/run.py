"""`make bench` / `make bench-full`: every benchmark, each printing its own table.

Performance is measured here and never asserted as wall time in a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK = [
    ("bench_step.py", ["--nproc", "1", "2", "--strategies", "ddp", "fsdp2", "deepspeed_z2",
                       "--rounds", "5", "--data"]),
    ("bench_control.py", ["--runs", "10000", "--rounds", "2"]),
    ("bench_data.py", ["--images", "4096"]),
    ("bench_train.py", ["--widths", "4", "16", "--rounds", "5"]),
    ("bench_sweep.py", []),
    ("bench_submit.py", []),
    ("bench_engine.py", ["--strategies", "ddp", "fsdp2_z3", "--steps", "6"]),
    ("bench_analysis.py", []),
    ("bench_transfer.py", ["--images", "2000", "--test_images", "1000"]),
    ("bench_startup.py", ["--rounds", "5", "--breakdown"]),
]
FULL = [
    ("bench_step.py", ["--nproc", "1", "2", "--strategies", "ddp", "fsdp2", "fsdp2_zero2",
                       "deepspeed_z2", "deepspeed_z3", "--rounds", "9", "--data"]),
    ("bench_step.py", ["--nproc", "1", "--strategies", "ddp", "--precision", "bf16",
                       "--rounds", "7"]),
    ("bench_control.py", ["--runs", "10000", "--rounds", "3"]),
    ("bench_data.py", ["--images", "32768"]),
    ("bench_data.py", ["--images", "8192", "--image_size", "64"]),
    ("bench_train.py", ["--widths", "4", "8", "16", "32", "--rounds", "9"]),
    ("bench_train.py", ["--widths", "4", "16", "--threads", "2"]),
    ("bench_sweep.py", ["--full"]),
    ("bench_engine.py", ["--steps", "12"]),  # every row of the strategy table
    ("bench_analysis.py", []),
    ("bench_transfer.py", ["--images", "10000"]),
    ("bench_startup.py", ["--rounds", "9", "--breakdown"]),
]


def record_cpu_peak() -> None:
    """Measure this host's CPU peak at 1 and 2 threads before anything else runs; a quiet
    measurement is cached (with its provenance) for the MFU of later runs."""
    from scaling.telemetry import measure_cpu_peak, peak_cache_path

    print("## CPU peak (fp32 matmul) for MFU")
    for threads in (1, 2):
        e = measure_cpu_peak(threads)
        state = "cached" if e["trusted"] else "NOT trusted (host busy), not cached"
        print(f"{threads} thread(s): {e['flops'] / 1e9:.1f} GFLOP/s, other load per core "
              f"{e['other_load_per_core']:.2f} -> {state}")
    print(f"cache: {peak_cache_path()}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true")
    group.add_argument("--full", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    record_cpu_peak()
    failed = 0
    for script, extra in (FULL if args.full else QUICK):
        start = time.perf_counter()
        print(f"\n## {script} {' '.join(extra)}", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / script), *extra], env=env)
        failed += proc.returncode != 0
        print(f"({time.perf_counter() - start:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
