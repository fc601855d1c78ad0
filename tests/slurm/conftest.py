"""The `slurm_cluster` fixture: a real one-node Slurm for the session
(tests/slurm/local_cluster.py).

With CI=true nothing here skips (a missing Slurm is a failure); elsewhere the Slurm tests
skip only when Slurm cannot be installed or started, and say why.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.slurm.local_cluster import Unavailable, ensure_cluster

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TIMINGS: list[str] = []
SUBMITTED: list[str] = []  # job ids the tests submitted (cancelled at the end if left over)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm-cluster")
    try:
        cluster = ensure_cluster(base)
    except Unavailable as exc:
        message = f"Slurm unavailable: {exc}"
        print(f"\n{message}", file=sys.stderr)
        if ON_CI:
            pytest.fail(f"{message} (CI=true: the Slurm tests never skip)")
        pytest.skip(message)
    TIMINGS.append(f"slurm cluster {'reused' if cluster.reused else 'started'} in "
                   f"{cluster.startup_s:.1f} s (conf under {base})")
    yield cluster
    if SUBMITTED:
        subprocess.run(["scancel", *sorted(set(SUBMITTED))], capture_output=True, timeout=60)
    cluster.stop()


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_sep("-", "slurm timings")
        for line in TIMINGS:
            terminalreporter.write_line(line)
