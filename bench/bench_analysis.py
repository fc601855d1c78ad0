"""Analysis time on a fabricated 10,000-row sweep: collect, fit (bootstrap included), report.

    python bench/bench_analysis.py [--seeds 34] [--n_boot 200] [--n_boot_nonlinear 50]

The sweep (`analysis.fakes.make_sweep`: 5 widths x 2 vocabularies x 5 sizes x seeds runs,
the world's 3 targets x 2 protocols each, so 34 seeds give 1,700 runs and 10,200 result
rows; accuracies saturate under 95%, so every law can be fitted at 10M images) is written
first and not timed. ``fit`` is what `scaling fit` and the report's fit cells do: the
log-linear law per width x vocabulary x target x protocol, the power and saturating laws on
the compute frontier per target x protocol, the joint law per vocabulary x target x
protocol. ``report`` is `analysis.report` end to end (it collects again, fits everything
again, extrapolates, plans, draws and exports HTML).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

from analysis import CollectWarning, collect, fit_groups, main_grid, report
from analysis.fakes import make_sweep

TARGETS = ("fine", "coarse", "novel")
PROTOCOLS = ("linear", "finetune")


def fit_all(df, n_boot: int, n_boot_nonlinear: int) -> int:
    """The fits of the report; returns how many groups were fitted (a group whose fit
    fails keeps its row, with NaN parameters and rmse, and is not counted)."""
    main = main_grid(df)
    by = ("target", "protocol")
    tables = [
        fit_groups(main, n_boot=n_boot),
        fit_groups(main, by=by, x="pretrain_flops", y="error", law="power", n_boot=n_boot,
                   frontier_bins=8),
        fit_groups(main, by=by, x="pretrain_flops", y="error", law="saturating",
                   n_boot=n_boot_nonlinear, frontier_bins=8),
        fit_groups(main, by=("vocab", *by), x=("params", "images_seen"), y="error",
                   law="joint", n_boot=n_boot_nonlinear, loss="huber", delta=1e-3),
    ]
    return sum(int(t["rmse"].notna().sum()) for t in tables)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=34)
    ap.add_argument("--n_boot", type=int, default=200)
    ap.add_argument("--n_boot_nonlinear", type=int, default=50)
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore", CollectWarning)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        sweep = make_sweep(Path(tmp), name="bench", widths=(4, 8, 16, 32, 48),
                           images=(1_000, 10_000, 100_000, 1_000_000, 10_000_000),
                           seeds=tuple(range(a.seeds)), targets=TARGETS, protocols=PROTOCOLS,
                           problems=True, ceiling=95.0)
        build = time.perf_counter() - start
        rows = []
        start = time.perf_counter()
        df = collect(sweep, write=True)
        rows.append(("collect", time.perf_counter() - start, f"{df.run_id.nunique()} runs"))
        start = time.perf_counter()
        groups = fit_all(df, a.n_boot, a.n_boot_nonlinear)
        rows.append(("fit", time.perf_counter() - start,
                     f"{groups} groups, n_boot {a.n_boot}/{a.n_boot_nonlinear}"))
        start = time.perf_counter()
        html = report(sweep, n_boot=a.n_boot, n_boot_nonlinear=a.n_boot_nonlinear)
        rows.append(("report", time.perf_counter() - start,
                     f"{html.stat().st_size / 1e6:.1f} MB html"))
    print(f"fabricated sweep: {len(df)} result rows (written in {build:.1f} s, not timed)")
    print(f"{'stage':10s} {'rows':>7s} {'seconds':>8s}  note")
    for stage, seconds, note in rows:
        print(f"{stage:10s} {len(df):7d} {seconds:8.2f}  {note}")
    print(f"{'total':10s} {len(df):7d} {sum(r[1] for r in rows):8.2f}")


if __name__ == "__main__":
    main()
