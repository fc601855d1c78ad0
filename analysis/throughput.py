"""Training telemetry per run (throughput, MFU, memory) from each run's metrics.jsonl.

Kept apart from `collect` because it answers a different question (what did the runs
cost, not what did they learn) and its table has one row per run, not per run x target.
It reads run folders through `analysis.collect`'s readers, so the same tolerance applies:
a missing or half-written metrics file is an empty row, never a traceback.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from analysis.collect import _dotted, iter_runs, read_config, read_json, read_metrics

TELEMETRY_COLUMNS = ["sweep", "run_id", "train_status", "width", "params", "flops_per_image",
                     "images_seen", "pretrain_flops", "devices", "steps", "images_per_s",
                     "tflops_per_s", "mfu", "max_mem_bytes", "wall_s", "device_s_per_flop"]


def _devices(config: dict | None, manifest: dict) -> int:
    nodes_x = manifest.get("nodes_x_devices")
    if isinstance(nodes_x, str) and "x" in nodes_x:
        try:
            nodes, per_node = (int(v) for v in nodes_x.split("x", 1))
            return nodes * per_node
        except ValueError:
            pass
    nodes = _dotted(config, "resources.nodes") or 1
    per_node = _dotted(config, "resources.devices_per_node") or 1
    return int(nodes) * int(per_node)


def _steady(series: pd.Series) -> float:
    """Median of a logged rate, without the first log step (compilation, warm-up) when
    there are later ones."""
    values = pd.to_numeric(series, errors="coerce").dropna()
    if len(values) > 1:
        values = values.iloc[1:]
    return float(values.median()) if len(values) else math.nan


def telemetry(*sweep_dirs: str | os.PathLike) -> pd.DataFrame:
    """One row per run: steady-state throughput and cost of its pretraining.

    ``images_per_s``, ``tflops_per_s`` and ``mfu`` are medians over logged steps (the
    first step left out as warm-up); ``max_mem_bytes`` is the largest logged; ``wall_s``
    the last. ``devices`` comes from the manifest's ``nodes_x_devices`` (else the config's
    resources). ``device_s_per_flop`` is what `analysis.plan` prices compute with:
    devices / achieved training FLOP/s, where achieved FLOP/s is ``tflops_per_s`` (else
    ``3 * flops_per_image * images_per_s``, forward + backward as docs/design.md counts it).
    """
    rows = []
    for name, run in iter_runs(sweep_dirs):
        config, _ = read_config(run.path / "config.yaml")
        state, _ = read_json(run.path / "state.json")
        metrics = read_metrics(run.path)
        m = run.manifest
        fpi = m.get("flops_per_image")
        devices = _devices(config, m)
        row = {"sweep": name, "run_id": run.run_id,
               "train_status": (state or {}).get("train") or "pending",
               "width": _dotted(config, "model.width_per_group")
               or m.get("model.width_per_group"),
               "params": m.get("params"), "flops_per_image": fpi,
               "images_seen": _dotted(config, "optim.images_seen")
               or m.get("optim.images_seen"),
               "pretrain_flops": m.get("pretrain_flops"),
               "devices": devices, "steps": len(metrics)}
        rates = {column: _steady(metrics[column]) if column in metrics else math.nan
                 for column in ("images_per_s", "tflops_per_s", "mfu")}
        row.update(rates)
        row["max_mem_bytes"] = (float(pd.to_numeric(metrics["max_mem_bytes"],
                                                     errors="coerce").max())
                                if "max_mem_bytes" in metrics else math.nan)
        row["wall_s"] = (float(pd.to_numeric(metrics["wall_s"], errors="coerce").iloc[-1])
                         if "wall_s" in metrics and len(metrics) else math.nan)
        achieved = rates["tflops_per_s"] * 1e12
        if not (achieved > 0) and fpi is not None:
            achieved = 3 * float(fpi) * rates["images_per_s"]
        row["device_s_per_flop"] = devices / achieved if achieved > 0 else math.nan
        rows.append(row)
    df = pd.DataFrame(rows, columns=TELEMETRY_COLUMNS)
    for column in TELEMETRY_COLUMNS[3:]:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype(float)
    return df


def telemetry_table(tel: pd.DataFrame) -> pd.DataFrame:
    """Telemetry for reading: per width, runs and median throughput, MFU, memory (GiB)."""
    logged = tel[tel["steps"] > 0]
    if not len(logged):
        return pd.DataFrame(columns=["width", "runs", "images/s", "TFLOP/s", "MFU",
                                     "max memory (GiB)"])
    table = logged.groupby("width").agg(
        runs=("run_id", "size"), ips=("images_per_s", "median"),
        tflops=("tflops_per_s", "median"), mfu=("mfu", "median"),
        mem=("max_mem_bytes", "max"))
    table.columns = ["runs", "images/s", "TFLOP/s", "MFU", "max memory (GiB)"]
    table["max memory (GiB)"] = table["max memory (GiB)"] / 2 ** 30
    return table.reset_index().astype({"width": int}).round(
        {"images/s": 1, "TFLOP/s": 3, "MFU": 3, "max memory (GiB)": 3})


def cost_model(tel: pd.DataFrame) -> pd.DataFrame:
    """Device-seconds per training FLOP per width: the median of its runs' telemetry.

    A width without telemetry gets the median over all runs (``source`` says which), i.e.
    the assumption that the sweep's hardware runs every width about equally efficiently.
    """
    logged = tel[np.isfinite(tel["device_s_per_flop"]) & tel["width"].notna()]
    overall = float(logged["device_s_per_flop"].median()) if len(logged) else math.nan
    per_width = logged.groupby("width")["device_s_per_flop"].agg(["median", "size"])
    widths = sorted(set(tel["width"].dropna()))
    rows = []
    for width in widths:
        if width in per_width.index:
            rows.append({"width": width, "device_s_per_flop": per_width.loc[width, "median"],
                         "runs": int(per_width.loc[width, "size"]), "source": "width"})
        else:
            rows.append({"width": width, "device_s_per_flop": overall, "runs": 0,
                         "source": "all runs"})
    return pd.DataFrame(rows, columns=["width", "device_s_per_flop", "runs", "source"])
