"""Results analysis: collect sweep folders into a table, fit scaling laws, plot, report.

Torch-free by design (a sweep trained on a cluster is analysed on a laptop), and cheap to
import: plotting and reporting (matplotlib, seaborn, papermill) load on first use.
"""

from __future__ import annotations

import importlib

from analysis.collect import (
    SCHEMA_VERSION,
    CollectWarning,
    SchemaVersionError,
    collect,
    load_results,
    precision_summary,
    read_metrics,
    run_states,
)
from analysis.extrapolate import Extrapolation, extrapolate, extrapolation_groups
from analysis.findings import Finding, Findings, findings
from analysis.findings_config import FindingsConfig, FindingsConfigError, load_findings_config
from analysis.fit import FitResult, FitWarning, fit_groups, fit_law, fit_xy, minimise, predict_row
from analysis.laws import (
    LAWS,
    JointLaw,
    Law,
    LogLinear,
    PowerLaw,
    SaturatingPowerLaw,
    get_law,
    register_law,
)
from analysis.plan import Plan, default_budget, plan
from analysis.reference import chinchilla_check
from analysis.report import fit_table, report  # papermill and nbconvert load inside report()
from analysis.select import ColumnError, accuracy_units, frontier, main_grid
from analysis.throughput import cost_model, telemetry, telemetry_table

# `analysis.collect` and `analysis.report` name the functions (as `scaling collect` and
# `scaling report` do); their modules are reached with `from analysis.report import ...`.
_LAZY = {name: "analysis.plots" for name in (
    "plot_scaling", "plot_status", "plot_model_size", "plot_vocab_matrix", "plot_ablation",
    "plot_telemetry", "plot_frontier", "vocab_matrix", "ablation_axes")}

__all__ = ["collect", "load_results", "precision_summary", "read_metrics", "run_states",
           "SCHEMA_VERSION",
           "SchemaVersionError", "CollectWarning", "fit_law", "fit_groups", "fit_xy",
           "minimise", "predict_row", "FitResult", "FitWarning", "fit_table", "ColumnError",
           "accuracy_units", "Law", "LAWS", "register_law", "get_law",
           "LogLinear", "PowerLaw", "SaturatingPowerLaw", "JointLaw", "frontier",
           "main_grid", "extrapolate", "extrapolation_groups", "Extrapolation", "plan",
           "Plan", "default_budget", "telemetry", "telemetry_table", "cost_model",
           "chinchilla_check", "report", "findings", "Findings", "Finding",
           "FindingsConfig", "FindingsConfigError", "load_findings_config", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
