"""Transfer protocols side by side: fine-tuning vs the linear probe per target, few-shot
curves, the duplicate-aware lower bound and the supervised baseline (torch-free).

`collect` gives one row per run x target x protocol; these helpers reshape it for the
report's "Protocols" section. Few-shot curves (one point per k) live in the few-shot result
files themselves, so `fewshot_curves` reads them with collect's readers.
"""

from __future__ import annotations

import os

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.collect import _run_rows, iter_runs, read_json

KEYS = ("width", "dataset_images", "vocab", "target")


def _hashtag_runs(df: pd.DataFrame) -> pd.DataFrame:
    done = df[df["status"] == "done"] if "status" in df.columns else df
    if "supervised" in done.columns:
        done = done[done["supervised"].isna()]
    return done[done["top1"].notna()]


def protocol_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean top-1 (over seeds) per width, dataset size, vocabulary and target, one column
    per protocol, plus `finetune - linear` and the linear probe's duplicate-aware lower
    bound where computed. Hashtag-pretrained done runs only."""
    data = _hashtag_runs(df)
    keys = [k for k in KEYS if k in data.columns]
    if data.empty:
        return pd.DataFrame(columns=keys)
    table = data.pivot_table(index=keys, columns="protocol", values="top1", aggfunc="mean",
                             dropna=False).dropna(how="all")
    table.columns = [f"top1_{c}" for c in table.columns]
    if {"top1_finetune", "top1_linear"} <= set(table.columns):
        table["finetune_minus_linear"] = table["top1_finetune"] - table["top1_linear"]
    if "top1_dedup" in data.columns and data["top1_dedup"].notna().any():
        lin = data[data["protocol"] == "linear"]
        table["top1_dedup_linear"] = lin.groupby(keys)["top1_dedup"].mean()
    return table.reset_index()


def supervised_table(df: pd.DataFrame) -> pd.DataFrame:
    """The supervised baseline (runs pretrained on a target's clean labels) beside the
    hashtag runs of the same width and size: mean top-1 per target and protocol."""
    done = df[(df["status"] == "done") & df["top1"].notna()] if len(df) else df
    if "supervised" not in done.columns or done["supervised"].isna().all():
        return pd.DataFrame()
    done = done.assign(pretraining=done["supervised"].map(
        lambda s: "hashtags" if pd.isna(s) else f"supervised:{s}"))
    keys = [k for k in ("width", "dataset_images", "target", "protocol") if k in done.columns]
    return done.pivot_table(index=keys, columns="pretraining", values="top1",
                            aggfunc="mean").reset_index()


def fewshot_curves(*sweep_dirs: str | os.PathLike) -> pd.DataFrame:
    """One row per run x target x k of every `fewshot` result: top1 / top5 means over the
    draws and their sd, with the run's width, dataset size, vocabulary, seed and
    supervised columns."""
    rows = []
    for name, run in iter_runs(sweep_dirs):
        files = sorted((run.path / "transfer").glob("*__fewshot.json")) \
            if (run.path / "transfer").is_dir() else []
        if not files:
            continue
        base = _run_rows(name, run, [])[0]
        for path in files:
            result = read_json(path)[0] or {}
            for point in result.get("fewshot", []):
                rows.append({"sweep": name, "run_id": run.run_id,
                             **{k: base.get(k) for k in ("width", "dataset_images", "vocab",
                                                         "seed", "supervised")},
                             "target": result.get("target"), **point})
    columns = ["sweep", "run_id", "width", "dataset_images", "vocab", "seed", "supervised",
               "target", "k", "n_train", "draws", "top1", "top1_sd", "top5", "top5_sd"]
    return pd.DataFrame(rows, columns=columns)


def _target_panels(table: pd.DataFrame, empty: str) -> tuple[Figure, list[tuple[Axes, str]]]:
    """A figure with one panel per target of ``table`` side by side, as (axes, target)
    pairs; with no target, a single panel saying ``empty`` and no pairs."""
    targets = sorted(table["target"].dropna().unique()) if len(table) else []
    fig = Figure(figsize=(4.2 * max(1, len(targets)), 3.4))
    axes = fig.subplots(1, max(1, len(targets)), squeeze=False)[0]
    if not targets:
        axes[0].text(0.5, 0.5, empty, ha="center", va="center")
    return fig, list(zip(axes, targets))


def plot_protocols(df: pd.DataFrame) -> Figure:
    """Top-1 against pretraining images, one panel per target, a line per protocol (the
    widest model; mean over seeds), the linear probe's lower bound dashed where computed."""
    data = _hashtag_runs(df)
    fig, panels = _target_panels(data, "no transfer results yet")
    if not panels:
        return fig
    for ax, target in panels:
        sub = data[data["target"] == target]
        if "width" in sub.columns and sub["width"].notna().any():
            sub = sub[sub["width"] == sub["width"].max()]
        for protocol, part in sub.groupby("protocol"):
            m = part.groupby("dataset_images")["top1"].agg(["mean", "std"]).reset_index()
            ax.errorbar(m["dataset_images"], m["mean"], yerr=m["std"].fillna(0), marker="o",
                        capsize=2, label=protocol)
            if protocol == "linear" and part["top1_dedup"].notna().any():
                d = part.groupby("dataset_images")["top1_dedup"].mean()
                ax.plot(d.index, d.values, "k--", lw=1, label="linear, duplicates wrong")
        ax.set_xscale("log")
        ax.set_title(target)
        ax.set_xlabel("pretraining images")
        ax.set_ylabel("top-1 (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_fewshot(curves: pd.DataFrame) -> Figure:
    """Top-1 against k (train images per class), one panel per target, a line per
    pretraining set size (the widest model; mean over seeds, error bar: the mean sd over
    draws)."""
    fig, panels = _target_panels(curves, "no few-shot results")
    if not panels:
        return fig
    for ax, target in panels:
        sub = curves[(curves["target"] == target) & curves["supervised"].isna()]
        if sub["width"].notna().any():
            sub = sub[sub["width"] == sub["width"].max()]
        for size, part in sub.groupby("dataset_images"):
            m = part.groupby("k").agg(top1=("top1", "mean"), sd=("top1_sd", "mean"))
            ax.errorbar(m.index, m["top1"], yerr=m["sd"], marker="o", capsize=2,
                        label=f"{int(size):,} images")
        ax.set_xscale("log")
        ax.set_xticks(sorted(sub["k"].unique()), [str(int(k)) for k in sorted(sub["k"].unique())])
        ax.set_title(target)
        ax.set_xlabel("k (train images per class)")
        ax.set_ylabel("top-1 (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

