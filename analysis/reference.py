"""Checking the fitting machinery against a published replication.

`chinchilla_check` fits the joint law E(N, D) = E + A/N^alpha + B/D^beta to the Chinchilla
points of Hoffmann et al. 2022 exactly as Besiroglu et al. 2024 describe (see
analysis/data/README.md): the 5 highest-loss points dropped, Huber loss with
delta 1e-3 on log L, log-sum-exp form, a grid of starts, L-BFGS-B. It is a language-model
law, used only to show that multi-start, Huber-in-log-space and the bootstrap work.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fit import FitResult, fit_xy

BESIROGLU = {"E": 1.817, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
"""Besiroglu et al. 2024's fit (their Table 1)."""
TOLERANCE = {"E": 0.02, "alpha": 0.02, "beta": 0.02, "A": 0.05, "B": 0.05}
"""Relative agreement asked of a reproduction."""


def reference_dir() -> Path:
    """The reference data shipped inside the package (sources in its README)."""
    return Path(__file__).resolve().parent / "data"


def chinchilla_check(path: str | os.PathLike | None = None, n_boot: int = 0, seed: int = 0,
                     method: str = "L-BFGS-B") -> tuple[FitResult, pd.DataFrame]:
    """Fit the Chinchilla points; returns the fit and a comparison table (parameter,
    ours, published, relative difference, tolerance, ok)."""
    path = Path(path) if path else reference_dir() / "chinchilla_points.csv"
    points = pd.read_csv(path)
    points = points.sort_values("loss", kind="stable").iloc[:-5]  # drop the 5 highest
    n = points["Model Size"].to_numpy(float)
    d = points["Training FLOP"].to_numpy(float) / (6 * n)
    fit = fit_xy(np.column_stack([n, d]), points["loss"].to_numpy(float), law="joint",
                 n_boot=n_boot, seed=seed, loss="huber", delta=1e-3, method=method,
                 bootstrap="cases", x_name=("N", "D"), y_name="loss")
    rows = []
    for name, published in BESIROGLU.items():
        ours = fit.params[name]
        rel = abs(ours - published) / published
        rows.append({"param": name, "ours": ours, "published": published,
                     "rel_diff": rel, "tolerance": TOLERANCE[name],
                     "ok": bool(rel <= TOLERANCE[name]),
                     "lo": fit.intervals[name][0], "hi": fit.intervals[name][1]})
    return fit, pd.DataFrame(rows)
