"""Results analysis: collect sweep folders into a table, fit scaling laws, plot, report.

Torch-free by design (a sweep trained on a cluster is analysed on a laptop), and cheap to
import: plotting and reporting (matplotlib, seaborn, papermill) load on first use.
"""

from __future__ import annotations

import importlib

from analysis.collect import (SCHEMA_VERSION, CollectWarning, SchemaVersionError, collect,
                              load_results, read_metrics, run_states)
from analysis.fit import FitResult, fit_groups, fit_law, predict_row
from analysis.laws import LAWS, Law, get_law, register_law
from analysis.report import report  # papermill and nbconvert load inside report()

# `analysis.collect` and `analysis.report` name the functions (as `scaling collect` and
# `scaling report` do); their modules are reached with `from analysis.report import ...`.
_LAZY = {"plot_scaling": "analysis.plots", "plot_status": "analysis.plots"}

__all__ = ["collect", "load_results", "read_metrics", "run_states", "SCHEMA_VERSION",
           "SchemaVersionError", "CollectWarning", "fit_law", "fit_groups", "predict_row",
           "FitResult", "Law", "LAWS", "register_law", "get_law", "report", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
