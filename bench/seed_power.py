"""How often a paper-mini finding clears its bar at a given number of seeds (a power estimate).

    python bench/seed_power.py [--effects records/paper_mini_seed_effects.csv]
                               [--seeds 6 3 6 0 6 4]

The effects file holds the per-seed effects of the judged quantities in the `make
paper-mini` records (one row per world, quantity and run seed, taken from each record's
results.parquet; `b16` is the record's width-16 slope, seed -1). For each quantity the
script pools the seed spread over the worlds, takes each world's mean as a plausible world
effect, and asks how often a two-sided 95% Student-t interval over n seeds (what the
findings' widened seed bootstrap approximates) clears the bar of configs/findings.yaml,
averaged over the worlds (the noncentral t: a one-sample t test's power). `--seeds` gives
a design's seeds for the quantities in the order printed (0: a quantity the design does
not run, e.g. sqrt when it resamples with uniform), and the script prints the chance that
all it runs clear together (independence assumed). records/history.md, "Power across the
records", quotes its tables.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

from scipy import stats

DEFAULT_EFFECTS = Path(__file__).parents[1] / "records" / "paper_mini_seed_effects.csv"
# quantity: (label, bar, side): "lower" passes when the interval's lower bound is above
# the bar, "upper" when its upper bound is below it; bar None = log10(2) x b16 of the world
# (10% noise costs less than halving the images, finding 5's rule read in points).
QUANTITIES = {
    "slope_gap": ("2: b16 - b4 per seed", 0.0, "lower"),
    "matched_minus_all_coarse": ("3: matched - all on coarse", -1.0, "lower"),
    "sqrt_minus_natural": ("4: sqrt - natural", 0.0, "lower"),
    "uniform_minus_natural": ("4: uniform - natural", 0.0, "lower"),
    "cost10": ("5: 10% under half the images", None, "upper"),
    "cost25_minus_cost10": ("5: cost(25%) - cost(10%)", 0.0, "lower"),
}
SEED_COUNTS = (3, 4, 5, 6, 8, 10, 12)


def read_effects(path: Path) -> dict:
    """{quantity: {world: [values]}}; the `b16` quantity holds each world's width-16 slope."""
    values: dict = defaultdict(lambda: defaultdict(list))
    with path.open() as f:
        for row in csv.DictReader(f):
            values[row["quantity"]][row["world"]].append(float(row["value"]))
    return values


def pass_chance(means: list, bars: list, sd: float, n: int, side: str) -> float:
    """Mean over worlds of P(the 95% t interval over n seeds clears the world's bar): the
    interval clears a lower bar when (estimate - bar) / (s / sqrt n) exceeds t(0.975, n-1),
    and that statistic follows a noncentral t with n - 1 degrees of freedom and
    noncentrality (mu - bar) / (sd / sqrt n) (the power of a one-sample t test)."""
    se = sd / math.sqrt(n)
    critical = stats.t.ppf(0.975, n - 1)
    chances = []
    for mu, bar in zip(means, bars):
        shift = (mu - bar) if side == "lower" else (bar - mu)
        chances.append(float(stats.nct.sf(critical, n - 1, shift / se)))
    return sum(chances) / len(chances)


def summarise(values: dict) -> dict:
    slope = {w: v[0] for w, v in values["b16"].items()}
    out = {}
    for q, (label, bar, side) in QUANTITIES.items():
        worlds = sorted(values[q], key=int)
        means = [sum(values[q][w]) / len(values[q][w]) for w in worlds]
        sds = [stats.tstd(values[q][w]) if len(values[q][w]) > 1 else math.nan
               for w in worlds]
        spread = [sd for sd in sds if not math.isnan(sd)]
        pooled = math.sqrt(sum(sd * sd for sd in spread) / len(spread))
        bars = [bar if bar is not None else math.log10(2) * slope[w] for w in worlds]
        out[q] = {"label": label, "side": side, "worlds": worlds, "means": means,
                  "n": [len(values[q][w]) for w in worlds], "sd": pooled, "sds": sds,
                  "bars": bars}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--effects", type=Path, default=DEFAULT_EFFECTS)
    ap.add_argument("--seeds", type=int, nargs=len(QUANTITIES), default=None,
                    help="a design's seeds for the quantities, in the order printed (0: not "
                         "run by the design)")
    args = ap.parse_args(argv)
    if args.seeds and any(n == 1 or n < 0 for n in args.seeds):
        ap.error(f"--seeds {args.seeds}: give 0 (not run) or at least 2 seeds per quantity "
                 "(an interval over seeds needs 2)")
    if args.seeds and not any(args.seeds):
        ap.error(f"--seeds {args.seeds}: a design runs at least one quantity; give its seeds "
                 "(0 marks only the ones it does not run)")
    summary = summarise(read_effects(args.effects))

    worlds = summary["slope_gap"]["worlds"]
    print("| quantity | " + " | ".join(f"world {w}" for w in worlds) + " | pooled sd |")
    print("|---|" + "---|" * (len(worlds) + 1))
    for s in summary.values():
        cells = {w: f"{m:+.1f} / {sd:.1f} ({n})" for w, m, sd, n in
                 zip(s["worlds"], s["means"], s["sds"], s["n"])}
        print(f"| {s['label']} | " + " | ".join(cells.get(w, "") for w in worlds)
              + f" | {s['sd']:.1f} |")
    print()
    print("| quantity | " + " | ".join(f"{n} seeds" for n in SEED_COUNTS) + " |")
    print("|---|" + "---|" * len(SEED_COUNTS))
    for s in summary.values():
        chances = [pass_chance(s["means"], s["bars"], s["sd"], n, s["side"])
                   for n in SEED_COUNTS]
        print(f"| {s['label']} | " + " | ".join(f"{c:.2f}" for c in chances) + " |")
    if args.seeds:
        product, ran = 1.0, 0
        for s, n in zip(summary.values(), args.seeds):
            if n:
                product *= pass_chance(s["means"], s["bars"], s["sd"], n, s["side"])
                ran += 1
        print(f"\nall {ran} run clear together at seeds {args.seeds}: {product:.2f}")


if __name__ == "__main__":
    main()
