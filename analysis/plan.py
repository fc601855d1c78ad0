"""Planning (beyond the paper): with this much compute, which model width and how many
pretraining images give the best predicted transfer accuracy?

Cost model, stated once because every number in a plan rests on it: a (width, images_seen)
point costs ``3 * flops_per_image * images_seen`` training FLOPs (docs/design.md's
``pretrain_flops``), priced at that width's measured device-seconds per FLOP (devices /
achieved FLOP/s, median of the sweep's own runs; see `analysis.throughput.cost_model`).
So a plan assumes the budget is spent on the sweep's hardware, strategy and batch size,
at the steady-state throughput its runs logged, that throughput does not change with
run length, and that transfer and evaluation are free. Predictions beyond the sweep's
largest run are extrapolations: each plan row says by how many decades.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.fit import FitResult, fit_law
from analysis.laws import Law, get_law
from analysis.select import column as _column
from analysis.throughput import cost_model
from contract.errors import ConfigError

ASSUMPTION = ("Cost = 3 x forward FLOPs/image x images seen, priced at each width's median "
              "measured device-seconds per FLOP in this sweep (same hardware, strategy and "
              "batch; steady-state throughput; transfer not counted).")


@dataclass
class Plan:
    """The best (width, images) per group for ``budget_hours`` device-hours.

    ``best`` has one row per group; ``candidates`` the best point of every width;
    ``cost`` the device-seconds per FLOP used per width; accuracy columns are ``top1``
    (%) with the bootstrap interval ``lo``/``hi``; ``decades`` is how far beyond the
    width's largest fitted run the point lies (0 or less: inside the data).
    """

    budget_hours: float
    best: pd.DataFrame
    candidates: pd.DataFrame
    cost: pd.DataFrame
    fits: dict = field(default_factory=dict, repr=False)
    assumption: str = ASSUMPTION

    def _repr_html_(self) -> str:
        return (f"<p><b>Plan for {self.budget_hours:.4g} device-hours.</b> "
                f"{self.assumption}</p>" + self.best.to_html(index=False, float_format="%.4g"))


def _to_accuracy(y: str, values, law: Law):
    """Predictions of ``y`` as top-1 accuracy in percent, clipped to [0, 100]: the derived
    ``error`` columns are fractions; another decreasing law's y is taken as an error in
    percent (the direction comes from the law, never from the column's name)."""
    values = np.asarray(values, float)
    if y in ("error", "top5_error"):
        values = 100 * (1 - values)
    elif law.decreasing:
        values = 100 - values
    return np.clip(values, 0.0, 100.0)  # a log-linear law would run past 100%


def plan(df: pd.DataFrame, budget_hours: float, telemetry: pd.DataFrame,
         law: str | Law = "loglinear", x: str = "images_seen", y: str = "top1",
         by: Sequence[str] = ("vocab", "target", "protocol"), n_boot: int = 200,
         grid: int = 48, seed: int = 0, **fit_options) -> Plan:
    """Which width and how many images maximise predicted accuracy within the budget.

    ``df`` is a `collect` table (done rows are used), ``telemetry`` an
    `analysis.throughput.telemetry` table of the same sweep. A one-input ``law`` is fitted
    per group and width on ``x``; a joint law (``inputs == 2``) per group on
    ``(params, x)``. For every width the images it can afford are searched on a log grid
    (``grid`` points from the smallest fitted size up to the budget), the best kept; the
    best width wins. Accuracy laws predict ``top1`` directly; error laws (``y="error"``)
    are turned back into top-1 percent.
    """
    if not budget_hours > 0:
        raise ConfigError(f"budget_hours={budget_hours} must be > 0")
    law = get_law(law)
    data = df[df["status"] == "done"] if "status" in df.columns else df
    data = data[_column(data, y).notna()]
    by = [c for c in by if c in data.columns]
    cost = cost_model(telemetry)
    price = dict(zip(cost["width"], cost["device_s_per_flop"]))
    budget_s = budget_hours * 3600.0
    candidates, fits = [], {}
    groups = data.groupby(by, dropna=False, sort=True) if by else [((), data)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        joint = None
        if law.inputs == 2:
            joint = fit_law(group, x=("params", x), y=y, law=law, n_boot=n_boot, seed=seed,
                            **fit_options)
            fits[key] = joint
        for width, runs in group.groupby("width", sort=True):
            fpi = float(pd.to_numeric(runs["flops_per_image"], errors="coerce").median())
            params = float(pd.to_numeric(runs["params"], errors="coerce").median())
            spf = price.get(width, math.nan)
            if not (math.isfinite(fpi) and math.isfinite(spf) and fpi > 0 and spf > 0):
                continue
            result: FitResult = joint if joint is not None else fit_law(
                runs, x=x, y=y, law=law, n_boot=n_boot, seed=seed, **fit_options)
            if joint is None:
                fits[(*key, width)] = result
            if not result.success:
                continue
            seen = pd.to_numeric(runs[x], errors="coerce")
            images_max = budget_s / (3 * fpi * spf)
            low = min(float(seen.min()), images_max)
            images = np.geomspace(low, images_max, grid)
            points = images if joint is None else np.column_stack(
                [np.full(grid, params), images])
            acc = _to_accuracy(y, result.predict(points), law)
            lo, hi = (_to_accuracy(y, b, law) for b in result.band(points))
            lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
            i = int(np.nanargmax(acc)) if np.isfinite(acc).any() else grid - 1
            candidates.append({
                **dict(zip(by, key)), "width": width, "params": params,
                "images_seen": float(images[i]),
                "device_hours": 3 * fpi * images[i] * spf / 3600,
                "top1": float(acc[i]), "lo": float(lo[i]), "hi": float(hi[i]),
                "decades": float(np.log10(images[i] / seen.max())), "law": law.name})
    columns = [*by, "width", "params", "images_seen", "device_hours", "top1", "lo", "hi",
               "decades", "law"]
    table = pd.DataFrame(candidates, columns=columns)
    if len(table):
        best_idx = table.groupby(by, dropna=False, sort=True)["top1"].idxmax() if by else [
            table["top1"].idxmax()]
        best = table.loc[list(np.ravel(best_idx))].reset_index(drop=True)
    else:
        best = table
    return Plan(budget_hours, best, table, cost, fits)


def default_budget(df: pd.DataFrame, telemetry: pd.DataFrame, factor: float = 10.0) -> float:
    """``factor`` times the device-hours of the sweep's most expensive done run (priced
    as a plan prices it), a budget one step beyond what the sweep has tried."""
    cost = cost_model(telemetry)
    price = dict(zip(cost["width"], cost["device_s_per_flop"]))
    done = df[df["status"] == "done"] if "status" in df.columns else df
    hours = [float(f) * price.get(w, math.nan) / 3600 for w, f in
             zip(done["width"], pd.to_numeric(done["pretrain_flops"], errors="coerce"))]
    hours = [h for h in hours if math.isfinite(h)]
    return factor * max(hours) if hours else math.nan
