"""The paper's six findings as verdicts computed from a results table.

`findings(df, config)` estimates each finding's effect (a slope or a paired difference of
transfer top-1, in points), gives it a 95% interval from a bootstrap OVER SEEDS and turns
the interval into a verdict with the rule `configs/findings.yaml` fixed before the runs:
"holds", "does not hold", or "not enough runs" (too few seeds, sizes or widths, or the
compared rows are missing). Nothing here is written by hand: the verdicts, the numbers
and the sentence saying what they mean all come from the table.

Runs on several worlds (a sweep with `replicates:`, docs/sweep-file.md) are judged over
(world, seed) REPLICATES instead of seeds: pairs are taken within a replicate and whole
replicates are resampled (`replicate_units`), so an interval covers world-to-world
variation and the claim is about a random world of the generator, not one world.

Why seeds are the unit resampled: runs that share a training seed share their
initialisation and data order, and the design pairs them (natural vs sqrt sampling at
seed 0, width 4 vs 16 at seed 0). Resampling individual rows would treat the six runs of
one seed as six independent observations and give intervals that are too narrow; each
replicate here draws whole seeds with replacement and keeps every run of a drawn seed, so
a paired difference stays paired and a slope keeps all its sizes. With the 3-6 seeds of a
small sweep the percentile interval is widened as in `analysis.fit` (Student t over
normal quantile for ``seeds - 1`` degrees of freedom, draws inflated by
``sqrt(seeds / (seeds - 1))``), which makes it match the t interval of a mean of per-seed
effects.
"""

from __future__ import annotations

import functools
import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.collect import design_columns
from analysis.findings_config import FindingsConfig, check_targets, load_findings_config
from analysis.fit import _interval, fit_xy
from analysis.laws import get_law

HOLDS, FAILS, NOT_ENOUGH = "holds", "does not hold", "not enough runs"

TITLES = {
    1: "Top-1 grows log-linearly with pretraining images",
    2: "Wider models gain more per 10x images",
    3: "Vocabulary: larger helps fine, matched is enough for coarse",
    4: "Resampling Zipfian tags beats natural sampling",
    5: "Label noise: 10% costs little, 25% costs more",
    6: "Full fine-tuning beats the linear probe on novel classes",
}


# --------------------------------------------------------------------------- results

@dataclass
class Part:
    """One estimated quantity of a finding and the test its interval must pass."""

    label: str
    effect: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    seeds: int = 0
    rule: str = ""
    """e.g. ``lower bound > 0``; empty for a quantity shown but not tested."""
    passed: bool | None = None
    """None: not enough runs to test (``note`` says why)."""
    note: str = ""


@dataclass
class Finding:
    """One finding: its parts, the verdict they give and one sentence of what it means."""

    number: int
    title: str
    verdict: str
    parts: list[Part]
    meaning: str

    @property
    def effect(self) -> float:
        """The first tested part's effect (the finding's headline number)."""
        return self._headline().effect

    @property
    def interval(self) -> tuple[float, float]:
        part = self._headline()
        return part.lo, part.hi

    def _headline(self) -> Part:
        tested = [p for p in self.parts if p.rule]
        return tested[0] if tested else (self.parts[0] if self.parts else Part(""))


@dataclass
class Findings:
    """All six verdicts. Print it, or show it in a notebook, for the table; `table()`
    gives it as a DataFrame, `to_dict()` as plain JSON, ``result[3]`` one finding."""

    findings: list[Finding]
    config: FindingsConfig
    level: float = 0.95
    extra: dict = field(default_factory=dict)
    unit: str = "seed"
    """What the bootstrap resamples: ``seed`` (one world), or ``replicate`` (a (world,
    seed) pair, when the runs span several worlds: see `replicate_units`)."""
    worlds: list = field(default_factory=list)
    """The world seeds (``data_seed``) of the judged runs."""

    @property
    def scope(self) -> str:
        """What the verdicts are claims about, in words (the report says it)."""
        return scope_text(self.worlds)

    def __getitem__(self, number: int) -> Finding:
        for f in self.findings:
            if f.number == number:
                return f
        raise KeyError(f"no finding {number}; have {[f.number for f in self.findings]}")

    @property
    def verdicts(self) -> dict[int, str]:
        return {f.number: f.verdict for f in self.findings}

    def table(self, digits: int = 2) -> pd.DataFrame:
        """One row per part: finding, quantity, effect, interval, seeds, rule, verdict."""
        ci = f"{100 * self.level:g}% CI"
        rows = []
        for f in self.findings:
            for p in f.parts or [Part("-", note=f.meaning)]:
                rows.append({
                    "finding": f"{f.number}. {f.title}", "quantity": p.label,
                    "effect": round(p.effect, digits) if math.isfinite(p.effect) else None,
                    ci: (f"[{p.lo:.{digits}f}, {p.hi:.{digits}f}]"
                         if math.isfinite(p.lo) and math.isfinite(p.hi) else ""),
                    f"{self.unit}s": p.seeds, "rule": p.rule,
                    "test": {True: "pass", False: "fail", None: "-"}[p.passed]
                    if p.rule else "shown",
                    "verdict": f.verdict, "note": p.note})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """Markdown: one bullet per finding with its verdict and what it means."""
        return "\n".join(f"- **{f.number}. {f.title}: {f.verdict}.** {f.meaning}"
                         for f in self.findings)

    def to_dict(self) -> dict:
        def num(v):
            return None if v is None or not math.isfinite(v) else float(v)
        return {"level": self.level, "unit": self.unit, "worlds": list(self.worlds),
                "scope": self.scope, "findings": [
            {"number": f.number, "title": f.title, "verdict": f.verdict,
             "meaning": f.meaning,
             "parts": [{"label": p.label, "effect": num(p.effect), "lo": num(p.lo),
                        "hi": num(p.hi), "seeds": p.seeds, "rule": p.rule,
                        "passed": p.passed, "note": p.note} for p in f.parts]}
            for f in self.findings]}

    def __repr__(self) -> str:
        return "Findings\n" + self.table().to_string(index=False)

    def _repr_html_(self) -> str:
        table = self.table().to_html(index=False, escape=True, na_rep="")
        over = "seeds" if self.unit == "seed" else "(world, seed) replicates"
        return f"<p><b>Findings</b> ({html.escape(f'{100 * self.level:g}')}% intervals " \
               f"over {over}; {html.escape(self.scope)})</p>{table}"


# --------------------------------------------------------------------------- the bootstrap

def seed_bootstrap(table: pd.DataFrame, statistic: Callable[[dict], float],
                   n_boot: int = 2000, level: float = 0.95, seed: int = 0
                   ) -> tuple[float, float, float, int]:
    """``(estimate, lo, hi, seeds)`` of ``statistic`` over resampled SEEDS of ``table``.

    ``statistic`` receives the columns of a table as a dict of numpy arrays (fast: it is
    called once per distinct replicate). Each replicate draws as many seeds as ``table``
    has, with replacement, and stacks all rows of each drawn seed; a seed drawn twice
    appears twice under two replicate labels (its ``seed`` column is replaced by the
    draw's position), so a statistic that pairs rows by seed pairs them within one copy.
    The statistic depends only on the multiset of drawn seeds, so each multiset is
    evaluated once. The percentile interval is widened for few seeds (see the module
    docstring); with fewer than 2 seeds it is NaN.
    """
    columns = {c: table[c].to_numpy() for c in table.columns}
    seed_of = pd.to_numeric(table["seed"], errors="coerce").to_numpy(float)
    seeds = np.unique(seed_of[np.isfinite(seed_of)])
    n = len(seeds)
    estimate = float(statistic(columns))
    if n < 2 or not math.isfinite(estimate):
        return estimate, math.nan, math.nan, n
    rows_of = [np.flatnonzero(seed_of == s) for s in seeds]
    rng = np.random.default_rng(seed)
    cache: dict[tuple, float] = {}
    draws = []
    for draw in rng.integers(0, n, size=(n_boot, n)):
        key = tuple(sorted(draw))
        if key not in cache:
            index = np.concatenate([rows_of[i] for i in key])
            replicate = {c: v[index] for c, v in columns.items()}
            replicate["seed"] = np.repeat(np.arange(n), [len(rows_of[i]) for i in key])
            cache[key] = float(statistic(replicate))
        draws.append(cache[key])
    finite = np.asarray(draws)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return estimate, math.nan, math.nan, n
    inflated = estimate + math.sqrt(n / (n - 1)) * (finite - estimate)
    lo, hi = _interval(estimate, inflated, level, n - 1)
    return estimate, lo, hi, n


# --------------------------------------------------------------------------- selecting rows

def _equal(series: pd.Series, value) -> pd.Series:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        numeric = pd.to_numeric(series, errors="coerce")
        return pd.Series(np.isclose(numeric.astype(float), float(value)), index=series.index)
    return series.astype(str).eq(str(value))


def _rows(df: pd.DataFrame, target: str, protocol: str, fixed: dict) -> pd.DataFrame:
    """Done rows with a top-1 for ``target`` / ``protocol`` and the ``fixed`` axis values."""
    keep = df["top1"].notna() & df["seed"].notna()
    if "status" in df.columns:
        keep &= df["status"].eq("done").fillna(False).astype(bool)
    keep &= _equal(df["target"], target) & _equal(df["protocol"], protocol)
    for column, value in fixed.items():
        if column in df.columns:
            keep &= _equal(df[column], value)
    return df[keep]


def _baseline(config: FindingsConfig, free: str | None = None) -> dict:
    fixed = {"vocab": config.baseline.vocab, "resample": config.baseline.resample,
             "label_noise": config.baseline.label_noise}
    if free is not None:
        fixed.pop(free, None)
    return fixed


def paired(df: pd.DataFrame, axis: str, a, b, target: str, protocol: str,
           fixed: dict) -> pd.DataFrame:
    """Matched pairs of runs that differ only in ``axis`` (``a`` vs ``b``): the matching
    columns (``seed`` among them) and ``diff`` = top1(a) - top1(b), one row per matched
    configuration.

    ``axis`` is a run axis (``vocab``, ``resample``, ``label_noise``) or ``protocol``
    (then both rows come from the same run). Rows are matched on every other design
    column (sweep, width, dataset size, seed, ...), so a difference is never taken
    between runs that differ in anything else.
    """
    if axis == "protocol":
        side_a = _rows(df, target, a, fixed)
        side_b = _rows(df, target, b, fixed)
        key = ["run_id", *design_columns(df)]
    else:
        rows = _rows(df, target, protocol, fixed)
        side_a, side_b = rows[_equal(rows[axis], a)], rows[_equal(rows[axis], b)]
        key = [c for c in design_columns(df) if c != axis]
    key = [c for c in dict.fromkeys(key) if c in df.columns]
    left = side_a[[*key, "top1"]].drop_duplicates(key, keep="last")
    right = side_b[[*key, "top1"]].drop_duplicates(key, keep="last")
    both = left.merge(right, on=key, suffixes=("_a", "_b"))
    return both.assign(diff=both["top1_a"] - both["top1_b"]).drop(columns=["top1_a", "top1_b"])


def _mean_diff(columns: dict) -> float:
    diff = np.asarray(columns["diff"], float)
    return float(diff.mean()) if len(diff) else math.nan


# --------------------------------------------------------------------------- verdicts

def _judge(part: Part, bound: str, threshold: float, min_seeds: int) -> Part:
    """Fill ``rule`` and ``passed``: ``lower`` asks lo > threshold, ``upper`` hi < it."""
    part.rule = f"{'lower bound >' if bound == 'lower' else 'upper bound <'} {threshold:g}"
    if part.seeds < min_seeds or not (math.isfinite(part.lo) and math.isfinite(part.hi)):
        part.passed = None
        part.note = part.note or f"{part.seeds} seed(s) with complete data, needs {min_seeds}"
    else:
        part.passed = bool(part.lo > threshold if bound == "lower" else part.hi < threshold)
    return part


def _combine(parts: list[Part], rule: str = "all") -> str:
    if rule == "any":
        # Only the parts the sweep ran count: one with no runs at all (e.g. no `uniform`
        # grid) can neither rescue the finding nor turn a tested failure into "not enough".
        ran = [p.passed for p in parts if p.rule and p.seeds > 0]
        if any(t is True for t in ran):
            return HOLDS
        return FAILS if ran and all(t is False for t in ran) else NOT_ENOUGH
    tested = [p.passed for p in parts if p.rule]
    if not tested:
        return NOT_ENOUGH
    if any(t is False for t in tested):
        return FAILS
    return NOT_ENOUGH if any(t is None for t in tested) else HOLDS


def _bootstrapped(label: str, table: pd.DataFrame, statistic, config: FindingsConfig,
                  note: str = "") -> Part:
    if not len(table):
        return Part(label, note=note or "no matching runs")
    est, lo, hi, n = seed_bootstrap(table, statistic, config.n_boot, config.level,
                                    config.boot_seed)
    return Part(label, est, lo, hi, n, note=note)


def _fmt(p: Part, unit: str = "points") -> str:
    return f"{p.effect:+.1f} {unit} [{p.lo:+.1f}, {p.hi:+.1f}]"


def _slope(columns: dict) -> float:
    law = get_law("loglinear")
    x = np.asarray(columns["dataset_images"], float)
    y = np.asarray(columns["top1"], float)
    if law.check(x, y):
        return math.nan
    return float(law.solve(x, y)[0][1])


def _curvature(columns: dict) -> float:
    """c of top1 = a + b u + c u^2, u = log10(images): points per (10x)^2; 0 on a line."""
    u = np.log10(np.asarray(columns["dataset_images"], float))
    y = np.asarray(columns["top1"], float)
    if len(np.unique(u)) < 3 or not np.all(np.isfinite(y)):
        return math.nan
    return float(np.polyfit(u - u.mean(), y, 2)[0])


def _scaling_rows(df: pd.DataFrame, config: FindingsConfig, target: str, protocol: str):
    """Per width: the rows fitted for findings 1-2, or why the width cannot be judged."""
    rows = _rows(df, target, protocol, _baseline(config))
    rows = rows[pd.to_numeric(rows["dataset_images"], errors="coerce") > 0]
    # Slopes compared across widths (finding 2) must span the same sizes: fit every width of
    # the scaling grid on the sizes they all have, so a size run at one width only (e.g. a
    # resampling grid's larger set) does not bend that width's line.
    grid = {w: set(g["dataset_images"]) for w, g in rows.groupby("width")}
    grid = {w: s for w, s in grid.items() if len(s) >= config.loglinear.min_sizes}
    common = set.intersection(*grid.values()) if len(grid) > 1 else set()
    if len(common) >= config.loglinear.min_sizes:
        rows = rows[rows["dataset_images"].isin(common) | ~rows["width"].isin(list(grid))]
    out = {}
    for width, group in rows.groupby("width", sort=True):
        # a seed counts only with every size of its width: a seed run at one size (another
        # grid's extra seed) adds no slope, and counting it would narrow the t interval
        full = group.groupby("seed")["dataset_images"].nunique()
        group = group[group["seed"].isin(full[full == group["dataset_images"].nunique()].index)]
        sizes, seeds = group["dataset_images"].nunique(), group["seed"].nunique()
        problem = ""
        if sizes < config.loglinear.min_sizes:
            problem = f"{sizes} dataset size(s), needs {config.loglinear.min_sizes}"
        elif seeds < config.min_seeds:
            problem = f"{seeds} seed(s), needs {config.min_seeds}"
        out[int(width)] = (group[["seed", "dataset_images", "top1"]], problem)
    return out


# Finding 1's per-width rows by (target, protocol): `findings()` memoises `_scaling_rows`
# once per call (functools.cache), since findings 1, 2 and 5 all read them.
_Curves = Callable[[str, str], dict]


def _curvature_text(curved: list[Part]) -> str:
    """Whether the log-quadratic term's intervals say the growth is log-linear."""
    known = [p for p in curved if p.seeds and not math.isnan(p.effect)]
    if not known:
        return ""
    bent = [p for p in known if p.lo > 0 or p.hi < 0]
    if not bent:
        return (" The log-quadratic term's interval includes 0 at every width: no curvature "
                "is detected, so the growth is log-linear over these sizes.")
    return (" Not quite log-linear: " + "; ".join(
        f"{p.label.split(',')[0]} is {_fmt(p, 'points / (10x)^2')} "
        f"({'flattening' if p.effect < 0 else 'steepening'})" for p in bent) + ".")


def _finding_loglinear(df, config, curves: _Curves) -> Finding:
    c = config.loglinear
    parts, widths, curved = [], [], []
    for width, (rows, problem) in curves(c.target, c.protocol).items():
        means = rows.groupby("dataset_images")["top1"].mean()
        r2 = fit_xy(means.index.to_numpy(float), means.to_numpy(), "loglinear", n_boot=0).r2
        label = f"b (width {width}), points / 10x images"
        if rows["dataset_images"].nunique() < c.min_sizes:
            # not a width of the scaling grid (e.g. one run in an ablation): shown, not judged
            parts.append(Part(label, seeds=rows["seed"].nunique(), note=problem))
            continue
        part = (Part(label, note=problem, seeds=rows["seed"].nunique()) if problem else
                _bootstrapped(label, rows, _slope, config, f"R² of the seed-mean curve {r2:.3f}"))
        parts.append(_judge(part, "lower", c.min_slope, config.min_seeds))
        widths.append(width)
        if not problem and rows["dataset_images"].nunique() >= 3:  # shown, not judged
            curved.append(_bootstrapped(
                f"c (width {width}), curvature, points / (10x)^2", rows, _curvature, config,
                f"top1 = a + b u + c u^2, u = log10 images, over "
                f"{rows['dataset_images'].nunique()} sizes"))
    verdict = _combine(parts)
    parts += curved
    where = f"{c.target}/{c.protocol}"
    judged = [p for p in parts if p.rule]
    if verdict == HOLDS:
        slowest = int(np.argmin([p.effect for p in judged]))
        meaning = (f"On {where}, every width gains top-1 with more distinct pretraining "
                   f"images; the slowest (width {widths[slowest]}) gains "
                   f"{_fmt(judged[slowest])} per 10x images." + _curvature_text(curved))
    elif verdict == FAILS:
        bad = next(p for p in parts if p.passed is False)
        meaning = (f"On {where}, {bad.label.split(',')[0]} is {_fmt(bad)}: its interval does "
                   f"not lie above {c.min_slope:g}, so growth with images is not shown there.")
    else:
        meaning = (f"Needs at least {c.min_sizes} dataset sizes x {config.min_seeds} seeds "
                   f"per width on {where} at the baseline; "
                   + ("; ".join(f"{p.label.split(',')[0]}: {p.note}" for p in parts)
                      if parts else "no such runs") + ".")
    return Finding(1, TITLES[1], verdict, parts, meaning)


def _finding_wider(df, config, curves: _Curves) -> Finding:
    c = config.wider
    usable = {w: rows for w, (rows, problem) in curves(c.target, c.protocol).items()
              if not problem}
    label = "b(widest) - b(narrowest)"
    if len(usable) < 2:
        part = _judge(Part(label, note=f"{len(usable)} width(s) with enough sizes and seeds, "
                           "needs 2"), "lower", c.min_difference, config.min_seeds)
        return Finding(2, TITLES[2], NOT_ENOUGH, [part],
                       f"Needs at least two widths, each with enough sizes and seeds on "
                       f"{c.target}/{c.protocol}; has {len(usable)}.")
    narrow, wide = min(usable), max(usable)
    both = set(usable[narrow]["seed"]) & set(usable[wide]["seed"])  # seeds paired across widths
    rows = pd.concat([usable[narrow].assign(width=narrow), usable[wide].assign(width=wide)])
    rows = rows[rows["seed"].isin(both)]

    def difference(columns):
        def at(width):
            keep = np.asarray(columns["width"]) == width
            return {c: np.asarray(v)[keep] for c, v in columns.items()}
        return _slope(at(wide)) - _slope(at(narrow))
    part = _bootstrapped(f"b(width {wide}) - b(width {narrow})", rows, difference, config)
    part = _judge(part, "lower", c.min_difference, config.min_seeds)
    verdict = _combine([part])
    if verdict == HOLDS:
        meaning = (f"Width {wide} gains {_fmt(part)} more per 10x images than width "
                   f"{narrow}: capacity is needed to use more data.")
    elif verdict == FAILS:
        meaning = (f"Width {wide} vs {narrow}: the slope difference is {_fmt(part)}, not "
                   f"above {c.min_difference:g}; a wider trunk is not shown to use more data "
                   "better.")
    else:
        meaning = f"Not enough seeds to compare the slopes of widths {wide} and {narrow}."
    return Finding(2, TITLES[2], verdict, [part], meaning)


def _vocab_order(value: str) -> tuple:
    """Numeric vocabularies by size, then named ones (`all`, `matched:...`) by name."""
    return (0, int(value), "") if str(value).isdecimal() else (1, 0, str(value))


def _vocab_extreme(values, which: str):
    sizes = sorted((str(v) for v in values if _vocab_order(v)[0] == 0), key=_vocab_order)
    if which == "largest":
        return "all" if "all" in values else (sizes[-1] if sizes else None)
    if which == "smallest":
        return sizes[0] if sizes else None
    return which


def _vocab_control(c, small) -> str | None:
    """The size control of ``small``: ``random:K`` for K = small's size, or as configured."""
    if c.control == "none" or small is None:
        return None
    if c.control == "random":
        return f"random:{small}" if str(small).isdecimal() else None
    return c.control


def _finding_vocabulary(df, config, curves: _Curves) -> Finding:
    c = config.vocabulary
    fixed = _baseline(config, free="vocab")
    present = set(_rows(df, c.fine_target, c.protocol, fixed)["vocab"].astype(str))
    large = _vocab_extreme(present - {c.matched}, c.large)
    small = _vocab_extreme(present, c.small)
    control = _vocab_control(c, small)
    control = control if control in present else None
    # With the size control run, "more tags" is large vs a random draw of small's size, so
    # the judged gain is not also a gain from WHICH tags the small vocabulary holds.
    lesser = control or small
    if large is None or lesser is None or large == lesser:
        fine = Part(f"top1({c.large}) - top1({c.small}) on {c.fine_target}",
                    note=f"vocabularies run on {c.fine_target}: {sorted(present) or 'none'}; "
                    "needs two of different size")
    else:
        table = paired(df, "vocab", large, lesser, c.fine_target, c.protocol, fixed)
        fine = _bootstrapped(f"top1(vocab {large}) - top1(vocab {lesser}) on {c.fine_target}"
                             + (", more tags" if control else ""), table, _mean_diff, config)
    fine = _judge(fine, "lower", c.min_gain, config.min_seeds)
    table = paired(df, "vocab", c.matched, c.full, c.coarse_target, c.protocol, fixed)
    coarse = _bootstrapped(f"top1({c.matched}) - top1({c.full}) on {c.coarse_target}",
                           table, _mean_diff, config)
    coarse = _judge(coarse, "lower", -c.tolerance, config.min_seeds)
    parts = [fine, coarse]
    verdict = _combine(parts)
    which = None
    if control:  # shown, not judged: the same size, the K most frequent vs a random K
        table = paired(df, "vocab", control, small, c.fine_target, c.protocol, fixed)
        which = _bootstrapped(f"top1(vocab {control}) - top1(vocab {small}) on "
                              f"{c.fine_target}, which tags", table, _mean_diff, config)
        parts.append(which)
    # every other vocabulary run on fine, against the large one: shown, not judged
    for other in sorted(present - {large, lesser}, key=_vocab_order):
        table = paired(df, "vocab", large, other, c.fine_target, c.protocol, fixed)
        if len(table):
            parts.append(_bootstrapped(f"top1(vocab {large}) - top1(vocab {other}) on "
                                       f"{c.fine_target}", table, _mean_diff, config))
    if verdict == HOLDS:
        meaning = (f"The larger vocabulary adds {_fmt(fine)} on {c.fine_target} over "
                   + (f"{lesser} tags drawn at random (so the gain is from more tags, not "
                      "from which tags)" if control else f"vocabulary {lesser}")
                   + f", and a vocabulary matched to {c.coarse_target} is at least as good "
                   f"as the full one ({_fmt(coarse)}, tolerance {c.tolerance:g}).")
    elif verdict == FAILS:
        bad = [p for p in parts if p.passed is False]
        meaning = "Not shown: " + "; ".join(f"{p.label} is {_fmt(p)}" for p in bad) + "."
    else:
        meaning = "Not enough runs: " + "; ".join(
            f"{p.label}: {p.note}" for p in parts if p.passed is None) + "."
    if which is not None and which.seeds and not math.isnan(which.effect):
        side = "beat" if which.lo > 0 else "lose to" if which.hi < 0 else None
        meaning += (f" At the same size, {small} tags drawn at random {side} the {small} most "
                    f"frequent ones ({_fmt(which)}): which tags a vocabulary holds matters "
                    "too." if side else f" At the same size, {small} tags drawn at random and "
                    f"the {small} most frequent ones are not told apart ({_fmt(which)}).")
    return Finding(3, TITLES[3], verdict, parts, meaning)


def _finding_resampling(df, config, curves: _Curves) -> Finding:
    c = config.resampling
    fixed = _baseline(config, free="resample")
    parts = []
    for scheme in c.schemes:
        table = paired(df, "resample", scheme, c.baseline, c.target, c.protocol, fixed)
        part = _bootstrapped(f"top1({scheme}) - top1({c.baseline})", table, _mean_diff, config)
        parts.append(_judge(part, "lower", c.min_gain, config.min_seeds))
    verdict = _combine(parts, rule="any")
    if verdict == HOLDS:
        best = next(p for p in parts if p.passed)
        meaning = f"On {c.target}, {best.label} is {_fmt(best)}."
    elif verdict == FAILS:
        meaning = (f"On {c.target}, no scheme beats {c.baseline} sampling: "
                   + "; ".join(f"{p.label} {_fmt(p)}" for p in parts if p.seeds) + ".")
    else:
        meaning = (f"Needs {', '.join(c.schemes)} and {c.baseline} runs paired by seed on "
                   f"{c.target}: " + "; ".join(f"{p.label}: {p.note}" for p in parts) + ".")
    return Finding(4, TITLES[4], verdict, parts, meaning + _mechanism_text(df, c.baseline))


def _mechanism_text(df: pd.DataFrame, baseline: str) -> str:
    """What the schemes did to the stream (sampling.json's figures), when the runs have
    them: the explanation is the measured mechanism, not an assumed one."""
    from analysis.sampling import sampling_table, sampling_text

    if "sampling_distinct" not in df.columns:
        return ""
    try:
        text = sampling_text(sampling_table(df), baseline=baseline)
    except (KeyError, ValueError):  # a table without the design columns the ablation uses
        return ""
    lines = [line.lstrip("- ").replace("**", "") for line in text.splitlines() if line.strip()]
    return "".join(f" {line}" for line in lines)


def pct(p: float) -> str:
    return f"{100 * p:g}%"


def _images_lost(columns: dict) -> float:
    """Share of pretraining images whose loss costs as much top-1 as the label noise does:
    1 - 10^(-cost / b) per width (cost from the ``pair`` rows, b, points per 10x images,
    from that width's ``curve`` rows), averaged over widths. A width whose curve does not
    rise (b <= 0) has no such share: a positive cost then counts as losing every image."""
    kind = np.asarray(columns["kind"])
    width = np.asarray(columns["width"])
    shares = []
    for w in np.unique(width[kind == "pair"]):
        pair = (kind == "pair") & (width == w)
        curve = {c: np.asarray(v)[(kind == "curve") & (width == w)] for c, v in columns.items()}
        cost = float(np.asarray(columns["diff"], float)[pair].mean())
        b = _slope(curve) if len(curve["top1"]) else math.nan
        if not math.isfinite(b):
            return math.nan
        shares.append(1.0 - 10.0 ** (-cost / b) if b > 0 else float(cost > 0))
    return float(np.mean(shares)) if shares else math.nan


def _noise_in_images(curves: dict, config, p: float, pairs: pd.DataFrame) -> Part:
    """cost(p) as the share of images it is worth: the noise ``pairs`` and, per width, the
    curve of finding 1 (``curves``: `_scaling_rows` on the same target and protocol),
    bootstrapped together over seeds."""
    label = f"images lost that cost as much as {pct(p)} noise (share)"
    if not len(pairs):
        return Part(label, note="no noise runs paired with clean ones")
    widths = sorted({int(w) for w in pairs["width"]})
    missing = [w for w in widths if w not in curves or curves[w][1]]
    if missing:
        return Part(label, note=f"width(s) {missing} have no curve of finding 1 to read "
                    "images from (needs sizes x seeds at the baseline)")
    table = pd.concat([pairs[["seed", "width", "diff"]].assign(kind="pair"),
                       *(curves[w][0].assign(width=w, kind="curve") for w in widths)],
                      ignore_index=True)
    part = _bootstrapped(label, table, _images_lost, config)
    part.seeds = min(part.seeds, pairs["seed"].nunique())  # a verdict needs noise seeds
    return part


def _finding_label_noise(df, config, curves: _Curves) -> Finding:
    c = config.label_noise
    fixed = _baseline(config, free="label_noise")
    low = paired(df, "label_noise", c.clean, c.low, c.target, c.protocol, fixed)
    high = paired(df, "label_noise", c.clean, c.high, c.target, c.protocol, fixed)
    cost_low = _bootstrapped(f"cost({pct(c.low)}) = top1({pct(c.clean)}) - "
                             f"top1({pct(c.low)})", low, _mean_diff, config)
    curve = curves(c.target, c.protocol)
    in_images = _noise_in_images(curve, config, c.low, low)
    if c.little_in == "images":
        little, threshold, unit = _judge(in_images, "upper", c.little_images,
                                         config.min_seeds), c.little_images, "of the images"
    else:
        little, threshold, unit = _judge(cost_low, "upper", c.little, config.min_seeds), \
            c.little, "points"
    cost_high = _bootstrapped(f"cost({pct(c.high)})", high, _mean_diff, config)
    # cost(high) - cost(low), each against clean, on configurations that have all three
    key = [col for col in low.columns if col != "diff"]
    both = low.merge(high, on=key, suffixes=("_low", "_high"))
    both["diff"] = both["diff_high"] - both["diff_low"]
    more = _judge(_bootstrapped(f"cost({pct(c.high)}) - cost({pct(c.low)})", both,
                                _mean_diff, config), "lower", 0.0, config.min_seeds)
    parts = [little, more, cost_low if little is in_images else in_images, cost_high,
             _noise_in_images(curve, config, c.high, high)]
    verdict = _combine(parts)
    share = (f"{in_images.effect:.2f} [{in_images.lo:.2f}, {in_images.hi:.2f}] of the images"
             if math.isfinite(in_images.effect) else "")
    if verdict == HOLDS:
        worth = f", what losing {share} would cost" if share else ""
        meaning = (f"{pct(c.low)} wrong tags cost {_fmt(cost_low)}{worth} (the rule: below "
                   f"{threshold:g} {unit}); {pct(c.high)} cost {_fmt(more)} more: noise "
                   "hurts, gradually.")
    elif verdict == FAILS:
        bad = [p for p in parts if p.passed is False]
        meaning = "Not shown: " + "; ".join(
            f"{p.label} is " + (share if p is in_images else _fmt(p)) + f" ({p.rule} fails)"
            for p in bad) + "."
    else:
        meaning = (f"Needs runs at label noise {pct(c.clean)}, {pct(c.low)} and "
                   f"{pct(c.high)} paired by seed on {c.target}"
                   + (", and finding 1's curve at their width" if c.little_in == "images"
                      else "") + ": " + "; ".join(p.note for p in parts
                                                  if p.rule and p.passed is None) + ".")
    return Finding(5, TITLES[5], verdict, parts, meaning)


def _finding_finetune(df, config, curves: _Curves) -> Finding:
    c = config.finetune
    table = paired(df, "protocol", c.better, c.baseline, c.target, "", _baseline(config))
    label = f"top1({c.better}) - top1({c.baseline}) on {c.target}"
    note = "" if len(table) else (f"no runs with both {c.better} and {c.baseline} results "
                                  f"on {c.target}")
    part = _judge(_bootstrapped(label, table, _mean_diff, config, note), "lower", c.min_gain,
                  config.min_seeds)
    verdict = _combine([part])
    others = []  # the same gain on every other target with both protocols: shown, not judged
    targets = df.loc[df["protocol"] == c.better, "target"].dropna().astype(str).unique()
    for target in sorted(set(targets) - {c.target}):
        table = paired(df, "protocol", c.better, c.baseline, target, "", _baseline(config))
        if len(table):
            others.append(_bootstrapped(f"top1({c.better}) - top1({c.baseline}) on {target}",
                                        table, _mean_diff, config))
    if verdict == HOLDS:
        meaning = (f"Fine-tuning the whole trunk adds {_fmt(part)} over the linear probe on "
                   f"{c.target}." + _finetune_compare(part, others, c.target))
    elif verdict == FAILS:
        meaning = (f"Fine-tuning vs the linear probe on {c.target}: {_fmt(part)}, not above "
                   f"{c.min_gain:g}.")
    else:
        meaning = f"Not enough runs: {part.note}."
    return Finding(6, TITLES[6], verdict, [part, *others], meaning)


def _finetune_compare(part: Part, others: list[Part], target: str) -> str:
    """Where fine-tuning gains more, read off the numbers (not assumed to be `novel`)."""
    text = []
    for other in others:
        if not other.seeds or math.isnan(other.effect):
            continue
        name = other.label.rsplit(" on ", 1)[-1]
        diff = other.effect - part.effect
        text.append(f" On {name} it adds {_fmt(other)}, "
                    + (f"{abs(diff):.1f} points {'more' if diff > 0 else 'less'} than on "
                       f"{target}" if abs(diff) >= 1 else f"about as much as on {target}")
                    + ".")
    return "".join(text)


def _hashable(df: pd.DataFrame) -> pd.DataFrame:
    """List-valued axes (e.g. ``transfer.targets: [[fine, coarse]]``) as tuples, so runs can
    be matched and grouped on them like on any other design column (also when the table
    was read back with ``pd.read_parquet``, which gives numpy arrays)."""
    def listlike(v) -> bool:  # a list from collect(), an array from pd.read_parquet
        return isinstance(v, (list, np.ndarray))

    lists = [c for c in df.columns if df[c].dtype == object and df[c].map(listlike).any()]
    if not lists:
        return df
    return df.assign(**{c: df[c].map(lambda v: tuple(v) if listlike(v) else v)
                        for c in lists})


def _worlds(df: pd.DataFrame) -> list:
    """The distinct world seeds of the rows a verdict can use (done, with a top-1)."""
    if "data_seed" not in df.columns:
        return []
    keep = df["top1"].notna() & df["seed"].notna()
    if "status" in df.columns:
        keep &= df["status"].eq("done").fillna(False).astype(bool)
    values = pd.to_numeric(df.loc[keep, "data_seed"], errors="coerce").dropna()
    return sorted(int(v) for v in values.unique())


def scope_text(worlds) -> str:
    """The claim's scope: one world, or a random world of the generator (several)."""
    if not worlds:
        return "the world of these runs (its seed is not recorded)"
    if len(worlds) == 1:
        return f"world {worlds[0]} only (one world of this generator)"
    return (f"a random world of this generator (worlds {world_list(worlds)}, "
            f"{len(worlds)} in all)")


def world_list(values) -> str:
    """``100-105`` for a run of consecutive integers, else the values by commas."""
    values = sorted(values)
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(map(str, values))


def replicate_units(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``(table, unit)``: with runs on several worlds, the ``seed`` column replaced by one
    code per (data_seed, seed) pair, the REPLICATE unit, and ``unit`` = ``replicate``;
    otherwise the table unchanged and ``seed``.

    Why: with `replicates:` (docs/sweep-file.md) replicate r trains on world base + r with
    seed r, so the runs of one replicate share (data_seed, seed). Pairs are already matched
    on every design column, data_seed included (a difference is taken within a replicate);
    coding the pair into ``seed`` makes every seed-resampling step below (the bootstrap,
    the seed counts, "a seed needs every size") resample whole replicates, so intervals
    include world-to-world variation. A sweep on one world keeps its seeds as they are, and
    its verdicts are exactly what they were. A design that crosses worlds with seeds (each
    world with several seeds) is read as independent (world, seed) replicates, which
    understates world-to-world variation; `replicates:` gives one seed per world.
    """
    worlds = _worlds(df)
    if len(worlds) < 2:
        return df, "seed"
    world = pd.to_numeric(df["data_seed"], errors="coerce").fillna(-1)  # -1: not recorded
    seed = pd.to_numeric(df["seed"], errors="coerce")
    known = seed.notna()
    pairs = pd.Series([(int(w), int(s)) if ok else None
                       for w, s, ok in zip(world, seed, known)], index=df.index)
    codes = {p: i for i, p in enumerate(sorted(set(pairs[known])))}
    coded = pairs.map(lambda p: codes.get(p) if p is not None else None)
    return df.assign(seed=pd.array(coded, dtype="Int64")), "replicate"


_SEED_WORDS = re.compile(r"\bseed(s|\(s\))?\b")


def _in_replicates(text: str) -> str:
    """A note or meaning written about seeds, said of replicates."""
    return _SEED_WORDS.sub(lambda m: "replicate" + (m.group(1) or ""), text)


def findings(df: pd.DataFrame, config=None) -> Findings:
    """All six verdicts for a results table (`analysis.collect`'s columns).

    ``config`` is a `FindingsConfig`, a path to a findings YAML, a mapping, or None for
    ``configs/findings.yaml``. Only done rows with a top-1 count.
    """
    config = load_findings_config(config)
    missing = [c for c in ("seed", "target", "protocol", "top1") if c not in df.columns]
    if missing:
        raise KeyError(f"column(s) {missing} not in the results table; have {list(df.columns)}")
    check_targets(config, df["target"].dropna().unique())
    df = _hashable(df)
    worlds = _worlds(df)
    df, unit = replicate_units(df)
    curves: _Curves = functools.cache(functools.partial(_scaling_rows, df, config))
    result = [f(df, config, curves) for f in (_finding_loglinear, _finding_wider,
                                               _finding_vocabulary, _finding_resampling,
                                               _finding_label_noise, _finding_finetune)]
    if unit == "replicate":
        for finding in result:
            finding.meaning = _in_replicates(finding.meaning)
            for part in finding.parts:
                part.note = _in_replicates(part.note)
    return Findings(result, config, config.level, unit=unit, worlds=worlds)
