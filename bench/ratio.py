"""Side-by-side measurement: every figure is a ratio against a baseline timed in the same
process, in interleaved rounds, reported as the median ratio with a 95% interval.

These machines are noisy (another job, the page cache, frequency scaling): absolute
images/s drift by tens of percent between runs, but two loops timed alternately in the
same rounds drift together. Each round runs every case once, in a shuffled order; the
ratio of a round is case / baseline of that round; the interval is a percentile bootstrap
of the median over rounds.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Ratio:
    """One case against the baseline: median of per-round ratios and its 95% interval."""

    case: str
    baseline: str
    ratio: float
    lo: float
    hi: float
    rounds: int
    rate: float
    """The case's median rate (its own unit, e.g. images/s)."""
    baseline_rate: float
    target: float | None = None
    """The ratio the case should reach (None: informative only)."""

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        if self.lo >= self.target:
            return "meets"
        return "below" if self.hi < self.target else "within noise"


def timed(fn: Callable[[], object], steps: int, sync: Callable[[], object] = lambda: None,
          per_call: float = 1.0) -> Callable[[], float]:
    """The one timed loop of every bench: a probe that runs `fn` `steps` times between two
    `sync()` calls (a barrier across ranks, a CUDA synchronize: the clock must not stop
    while work is still queued or a rank is behind) and returns `per_call` units (images
    of a batch, say) x steps per second. `interleave` calls the probes."""
    def rate() -> float:
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        return per_call * steps / (time.perf_counter() - start)
    return rate


def interleave(cases: dict[str, Callable[[], float]], rounds: int, warmup: int = 1,
               seed: int = 0) -> dict[str, list[float]]:
    """Call every case once per round in a shuffled order; each call returns a rate."""
    order = list(cases)
    rng = random.Random(seed)
    for _ in range(warmup):
        for name in order:
            cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in order}
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            samples[name].append(float(cases[name]()))
    return samples


def median_interval(values: list[float], n_boot: int = 2000, seed: int = 0
                    ) -> tuple[float, float, float]:
    """Median and its 95% percentile-bootstrap interval."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 1:
        return float(arr[0]), float(arr[0]), float(arr[0])
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(arr, size=(n_boot, arr.size), replace=True), axis=1)
    return float(np.median(arr)), float(np.percentile(boots, 2.5)), \
        float(np.percentile(boots, 97.5))


def ratios(samples: dict[str, list[float]], baseline: str,
           targets: dict[str, float] | None = None) -> list[Ratio]:
    """Per-round ratios of every case against `baseline`, summarised."""
    base = samples[baseline]
    out = []
    for case, values in samples.items():
        if case == baseline:
            continue
        per_round = [v / b for v, b in zip(values, base, strict=True) if b > 0]
        mid, lo, hi = median_interval(per_round)
        out.append(Ratio(case, baseline, mid, lo, hi, len(per_round),
                         statistics.median(values), statistics.median(base),
                         (targets or {}).get(case)))
    return out


def table(title: str, rows: list[Ratio], unit: str = "img/s") -> str:
    """A plain-text table: case, its rate, the baseline's, the ratio [95% interval]."""
    lines = [title, f"{'case':<44s} {unit:>10s} {'baseline':>10s} {'ratio':>7s} "
                    f"{'95% interval':>15s} {'target':>7s}  verdict"]
    for r in rows:
        target = f"{r.target:.2f}" if r.target is not None else "-"
        lines.append(f"{r.case:<44s} {r.rate:10.1f} {r.baseline_rate:10.1f} {r.ratio:7.3f} "
                     f"  [{r.lo:5.3f}, {r.hi:5.3f}] {target:>7s}  {r.verdict}")
    return "\n".join(lines)


def write(name: str, payload: dict) -> Path:
    """`bench/results/<name>.json`, written atomically (ratios as dicts)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {k: ([asdict(r) if isinstance(r, Ratio) else r for r in v] if isinstance(v, list)
                else v) for k, v in payload.items()}
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=f".{name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(body, handle, indent=1, default=str)
    os.replace(tmp, path)
    return path
