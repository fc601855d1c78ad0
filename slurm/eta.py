"""Wall time of a sweep from its per-run estimates (manifest `est_train_s` +
`est_transfer_s`, measured on this host by `scaling sweep`: scaling/walltime.py), and the
local executor's running ETA. Torch-free: the executor and the CLI read only the manifest.

The schedule is the local executor's own: runs costliest first onto `parallel` slots
(slurm/local.py `longest_first`). The ETA rescales the estimates by how the finished runs
compared with theirs, so a host busier than when it was measured is accounted for.
"""

from __future__ import annotations

import heapq
import math
from typing import Optional


def run_seconds(row: dict) -> Optional[float]:
    """A manifest row's estimated seconds (train + transfer), None when it has none."""
    try:
        value = float(row["est_train_s"]) + float(row["est_transfer_s"])
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def schedule(seconds: list[float], parallel: int, busy: Optional[list[float]] = None) -> float:
    """Wall time of jobs run costliest first on `parallel` slots, some of which are `busy`
    for the given seconds first."""
    slots = sorted((busy or [])[:parallel]) + [0.0] * max(0, parallel - len(busy or []))
    heapq.heapify(slots)
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(slots, slots[0] + s)
    return max(slots, default=0.0)


def describe(seconds: float) -> str:
    """'45 s', '9.6 min', '2.3 h'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def sweep_summary(rows: list[dict], parallel: int) -> Optional[str]:
    """One line for `scaling sweep`: the study's wall time at `parallel` runs at a time on
    this host (CPU runs), or its run time by the GPU table (CUDA runs); None without
    estimates (a manifest from an older version)."""
    seconds = [run_seconds(r) for r in rows]
    if not rows or any(s is None for s in seconds):
        return None
    train = sum(float(r["est_train_s"]) for r in rows)
    transfer = sum(float(r["est_transfer_s"]) for r in rows)
    bases = sorted({str(r.get("est_basis", "")) for r in rows})
    if all(b.startswith("GPU table") for b in bases):
        return (f"estimated run time: {describe(train)} in all, the longest run "
                f"{describe(max(float(r['est_train_s']) for r in rows))} ({'; '.join(bases)})")
    wall = schedule([s for s in seconds if s is not None], parallel)
    return (f"estimated wall time on this host: {describe(wall)} at --parallel {parallel} "
            f"({len(rows)} runs: {describe(train)} training, {describe(transfer)} transfer; "
            f"{'; '.join(bases)})")


class Eta:
    """The local executor's running estimate of the time left."""

    def __init__(self, estimates: dict[str, Optional[float]], parallel: int) -> None:
        self.estimates, self.parallel = estimates, max(1, parallel)
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    @property
    def known(self) -> bool:
        return all(v is not None for v in self.estimates.values()) and bool(self.estimates)

    def start(self, run_id: str, now: float) -> None:
        self.started[run_id] = now

    def finish(self, run_id: str, now: float) -> None:
        self.finished[run_id] = now - self.started.get(run_id, now)

    def scale(self) -> float:
        """Actual over estimated seconds of the finished runs (1 before any finishes)."""
        done = [(self.finished[r], self.estimates[r]) for r in self.finished
                if self.estimates.get(r)]
        est = sum(e for _, e in done if e)
        return sum(a for a, _ in done) / est if est > 0 else 1.0

    def left(self, now: float) -> Optional[float]:
        """Seconds until every run is done, or None without estimates."""
        if not self.known:
            return None
        k = self.scale()
        running = [max(0.0, k * (self.estimates[r] or 0.0) - (now - t))
                   for r, t in self.started.items() if r not in self.finished]
        waiting = [k * (v or 0.0) for r, v in self.estimates.items()
                   if r not in self.started]
        return schedule(waiting, self.parallel, running)
