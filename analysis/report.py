"""A sweep's report: an executed notebook, its HTML, its figures and its fits.

The notebook template (``analysis/templates/report.ipynb``) is the report: it only calls
this package's public functions, so what a reader sees is what they can re-run by hand.
`report` collects the sweep, runs the template with papermill (parameter ``sweep_dir``)
and exports it with nbconvert::

    <sweep>/report/report.ipynb     executed notebook
    <sweep>/report/report.html      the same, as one self-contained page
    <sweep>/report/figures/*.png    and *.svg (written by the notebook)
    <sweep>/report/fits.json        every fit table (written by the notebook)
    <sweep>/report/findings.json    the six findings' verdicts (written by the notebook)

The helpers below (`save_figure`, `write_fits`, `write_findings`, `slope_table`, `fit_table`,
`trust_summary`, `floor_table`) are what the notebook calls to write and show those files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from pathlib import Path

import pandas as pd

from analysis.collect import SCHEMA_VERSION, CollectWarning, check_sweep_dir, collect
from contract.atomic import atomic_path, atomic_write_text

TEMPLATE = Path(__file__).parent / "templates" / "report.ipynb"


class ReportError(RuntimeError):
    """The report notebook failed; the message names the cell, the error and the file."""


# --------------------------------------------------------------------------- the entry point

def report(sweep_dir: str | os.PathLike, out: str | os.PathLike | None = None,
           execute: bool = True, kernel_name: str = "python3",
           timeout_s: int = 600, budget_hours: float | None = None, n_boot: int = 200,
           n_boot_nonlinear: int = 50, holdout: int = 1,
           findings_config: str | os.PathLike | None = None,
           registry: str | os.PathLike | None = None,
           calibration: str | os.PathLike | None = None) -> Path:
    """Write ``<sweep>/report/report.html`` (or under ``out``) and return its path.

    Collects the sweep first (writing ``results.parquet``), then executes the template with
    papermill on the ``kernel_name`` kernel and exports HTML with nbconvert. The notebook's
    parameters: ``budget_hours`` for the plan (None: 10x the sweep's most expensive run),
    ``n_boot`` bootstrap replicates for the closed-form laws and ``n_boot_nonlinear`` for
    the iterative ones, ``holdout`` largest sizes held out in the extrapolation check,
    ``findings_config`` the YAML deciding the Findings section (None: the shipped
    ``configs/findings.yaml``; it is validated here, before any cell runs), ``registry``
    the registry of studies the Findings header checks the sweep against (None: the
    repository's ``records/registry.yaml`` when it exists, else none: exploratory;
    `analysis.registry`, validated here too), ``calibration`` the breaker-pair CSV whose
    hit and false-alarm rates the Findings section shows (None: the shipped
    ``analysis/data/calibration.csv``; a missing file gives one line there). With
    ``execute=False`` only the parameterised, unexecuted ``report.ipynb`` is written (to
    run or edit by hand) and its path is returned. A failing cell raises `ReportError`
    after the partial notebook and HTML are written, so the traceback can be read there.
    """
    import papermill

    from analysis.findings_config import check_targets, load_findings_config

    sweep = check_sweep_dir(Path(sweep_dir).resolve())  # before report/ is made in it
    # a bad field fails here, in one line, before any file is written
    found_config = load_findings_config(findings_config)
    if findings_config is not None:
        findings_config = str(Path(findings_config).resolve())
    from analysis.registry import load_registry

    load_registry(registry)  # a malformed registry fails here, in one line
    if registry is not None:
        registry = str(Path(registry).resolve())
    if calibration is not None:
        calibration = str(Path(calibration).resolve())
    out = Path(out).resolve() if out else sweep / "report"
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollectWarning)  # the notebook's run table shows them
        df = collect(sweep, write=True)
    template = TEMPLATE
    if not ((df["status"] == "done") & df["top1"].notna()).any():
        template = _runs_only_template(out)  # nothing to fit or plot: show why
    else:
        check_targets(found_config, df["target"].dropna().unique())
    notebook = out / "report.ipynb"
    parameters = {"sweep_dir": str(sweep), "out_dir": str(out), "budget_hours": budget_hours,
                  "n_boot": n_boot, "n_boot_nonlinear": n_boot_nonlinear, "holdout": holdout,
                  "findings_config": findings_config, "registry": registry,
                  "calibration": calibration}
    if not execute:
        with atomic_path(notebook, suffix=".tmp.ipynb") as tmp:
            papermill.execute_notebook(_literal(template), _literal(tmp),
                                       parameters=parameters, prepare_only=True,
                                       progress_bar=False)
            _record_paths(tmp, template, notebook)
        return notebook
    failed = None
    # papermill saves the notebook after every cell: into a temporary file, so a reader
    # (or a full disk) never leaves a half-written report.ipynb; a failing cell's notebook
    # is complete (its traceback is the point) and replaces the old one
    with atomic_path(notebook, suffix=".tmp.ipynb") as tmp, _kernel_imports_this_package():
        try:
            papermill.execute_notebook(_literal(template), _literal(tmp),
                                       parameters=parameters, kernel_name=kernel_name,
                                       progress_bar=False, cwd=str(out),
                                       execution_timeout=timeout_s)
        except papermill.PapermillExecutionError as e:
            failed = e
        _record_paths(tmp, template, notebook)
    if failed is not None:
        html = _export_html(notebook)
        raise ReportError(f"report notebook failed in cell {failed.exec_count}: "
                          f"{failed.ename}: {failed.evalue}; see {html}") from None
    return _export_html(notebook)


def _record_paths(written: Path, template: Path, notebook: Path) -> None:
    """papermill records the paths it was given in the notebook's metadata: the real ones,
    not the temporary file's name or the brace-doubled spelling."""
    nb = json.loads(written.read_text())
    meta = nb.get("metadata", {}).get("papermill")
    if isinstance(meta, dict):
        meta.update(input_path=str(template), output_path=str(notebook))
        written.write_text(json.dumps(nb, indent=1) + "\n")


def _literal(path) -> str:
    """`path` as papermill reads it literally: it formats input and output paths with the
    notebook's parameters (`str.format`), so a brace in a folder name (`roots/br{lab}`)
    must be doubled to mean itself."""
    return str(path).replace("{", "{{").replace("}", "}}")


def _runs_only_template(out: Path) -> Path:
    """The template cut to its set-up and its run table, for a sweep with no finished run
    (every figure and fit needs one): the reader sees which runs failed and why."""
    nb = json.loads(TEMPLATE.read_text())
    cells = nb["cells"]
    runs = next(i for i, c in enumerate(cells)
                if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## Runs"))
    note = {"cell_type": "markdown", "id": "no-finished-runs", "metadata": {}, "source": [
        "**No run has finished with a transfer result yet**: there is nothing to fit or "
        "plot. The table below says which runs stopped and why."]}
    nb["cells"] = cells[:3] + [note] + cells[runs:]
    path = out / ".runs-only-template.ipynb"
    atomic_write_text(path, json.dumps(nb))
    return path


@contextlib.contextmanager
def _kernel_imports_this_package():
    """Put the folder holding this `analysis` package first on the kernel's PYTHONPATH.

    The kernel is a fresh process started from the report folder; without this it would
    import whichever `analysis` its environment resolves (an older install, or a stale
    editable-install namespace), not the code that is writing the report.
    """
    root = str(Path(__file__).resolve().parents[1])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([root, old] if old else [root])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _export_html(notebook: Path) -> Path:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_filename(str(notebook))
    return atomic_write_text(notebook.with_suffix(".html"), body)


# --------------------------------------------------------------------------- notebook helpers

def save_figure(fig, name: str, out_dir: str | os.PathLike, formats=("png", "svg"),
                dpi: int = 120):
    """Save ``fig`` as ``<out_dir>/figures/<name>.<fmt>`` and return the PNG for display.

    Showing the saved PNG (an `IPython.display.Image`) rather than the live figure makes
    the notebook's picture identical to the file, and independent of the matplotlib
    backend: it becomes an ``<img>`` in the HTML even under a forced Agg backend.
    """
    from IPython.display import Image

    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        fig.savefig(folder / f"{name}.{fmt}", dpi=dpi, bbox_inches="tight")
    return Image(filename=str(folder / f"{name}.png"))


def _jsonable(value):
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(table: pd.DataFrame) -> list[dict]:
    table = table.drop(columns=["fit"], errors="ignore")  # FitResult objects stay in memory
    return [{k: _jsonable(v) for k, v in row.items()} for row in table.to_dict("records")]


def write_fits(fits: pd.DataFrame, path: str | os.PathLike, extra: dict | None = None,
               **meta) -> Path:
    """Write a `fit_groups` table as ``{"schema_version", **meta, "fits": [rows]}`` JSON;
    ``extra`` maps more names to tables (other laws, extrapolation, plan) stored beside
    ``fits`` under those names."""
    doc = {"schema_version": SCHEMA_VERSION, **{k: _jsonable(v) for k, v in meta.items()},
           "fits": _records(fits)}
    doc.update({name: _records(table) for name, table in (extra or {}).items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def world_line(df: pd.DataFrame) -> str:
    """The header's words on the worlds the runs trained on: ``data seed 43`` for one (the
    Findings header says the claims are about that world only); several (replicate
    worlds) make the claims about a random world of the generator, and it says so."""
    from analysis.findings import world_list

    worlds = sorted(int(w) for w in pd.to_numeric(df["data_seed"], errors="coerce")
                    .dropna().unique()) if "data_seed" in df.columns else []
    if not worlds:
        return "data seed unknown"
    if len(worlds) == 1:
        return f"data seed {worlds[0]}"
    return (f"data seeds {world_list(worlds)} ({len(worlds)} worlds: the claims are about "
            "a random world of this generator)")


def findings_header(result, registered) -> str:
    """Markdown above the findings table: whether the study is registered
    (`analysis.registry.Registration.line`) and what the verdicts are claims about."""
    over = ("training seeds on one world (whole seeds resampled, so runs that share a seed "
            "stay paired)" if result.unit == "seed" else
            "(world, seed) replicates (pairs taken within a replicate, whole replicates "
            "resampled, so the intervals include world-to-world variation)")
    return (f"**{registered.line}.** The verdicts are claims about {result.scope}; each "
            f"interval is a {100 * result.level:g}% bootstrap interval over {over}.")


def write_findings(result, path: str | os.PathLike, **meta) -> Path:
    """Write an `analysis.findings.Findings` as ``{"schema_version", **meta, "level",
    "findings": [...]}`` JSON (each finding's verdict, meaning and parts)."""
    doc = {"schema_version": SCHEMA_VERSION, **{k: _jsonable(v) for k, v in meta.items()},
           **result.to_dict()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def slope_table(fits: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """A log-linear `fit_groups` table for reading: points per 10x images with its interval."""
    by = list(fits.columns[:list(fits.columns).index("law")])
    ci = f"{100 * level:g}% CI"
    table = fits[by].copy()
    table["points / 10x images"] = fits["b"].round(2)
    table[ci] = [f"[{lo:.2f}, {hi:.2f}]" if pd.notna(lo) else "" for lo, hi in
                 zip(fits["b_lo"], fits["b_hi"])]
    table["a"] = fits["a"].round(2)
    table["r²"] = fits["r2"].round(3)
    table["points"] = fits["n"]
    if fits["message"].fillna("").ne("").any():
        table["note"] = fits["message"]
    _warnings(table, fits)
    return table.reset_index(drop=True)


def floor_table(df: pd.DataFrame, by=("width", "target", "protocol")) -> pd.DataFrame:
    """Random-trunk floor (mean and sd over done rows) per width, target and protocol."""
    by = [c for c in by if c in df.columns]
    done = df[(df["status"] == "done") & df["floor_top1"].notna()]
    if not len(done):
        return pd.DataFrame(columns=[*by, "floor_top1", "sd", "runs"])
    table = done.groupby(by, dropna=False)["floor_top1"].agg(["mean", "std", "count"])
    table.columns = ["floor_top1", "sd", "runs"]
    return table.round(2).reset_index()


def fit_table(fits: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Any law's `fit_groups` table for reading: one ``value [lo, hi]`` column per
    parameter, then points and r², and why a group failed."""
    from analysis.laws import get_law

    if not len(fits):
        return pd.DataFrame()
    law = get_law(fits["law"].iloc[0])
    by = list(fits.columns[:list(fits.columns).index("law")])
    table = fits[by + ["law"]].copy()

    def cell(v, lo, hi):
        if pd.isna(v):
            return ""
        ci = f" [{lo:.{digits}g}, {hi:.{digits}g}]" if pd.notna(lo) else ""
        return f"{v:.{digits}g}{ci}"
    for p in law.params:
        table[p] = [cell(v, lo, hi) for v, lo, hi in
                    zip(fits[p], fits[f"{p}_lo"], fits[f"{p}_hi"])]
    table["points"] = fits["n"]
    table["per param"] = (fits["n"] / len(law.params)).round(1)
    table["r²"] = fits["r2"].round(3)
    if fits["message"].fillna("").ne("").any():
        table["note"] = fits["message"]
    _warnings(table, fits)
    return table.reset_index(drop=True)


def _warnings(table: pd.DataFrame, fits: pd.DataFrame) -> None:
    """Add the fits' `FitWarning` texts as a ``warning`` column, when there are any."""
    if "warning" in fits and fits["warning"].fillna("").ne("").any():
        table["warning"] = fits["warning"].fillna("").to_numpy()


def trust_summary(ext: pd.DataFrame) -> str:
    """One paragraph (Markdown) on how far a table of extrapolation checks says the fits
    can be trusted."""
    if not len(ext):
        return "_No fits to check yet._"
    judged = ext[ext["mae"].notna()] if "mae" in ext else ext.iloc[:0]
    if not len(judged):
        return f"_Could not check extrapolation: {ext['trust'].iloc[0]}._"
    verdicts = judged["trust"].str.split(" ").str[0]
    counts = {w: int((verdicts == w).sum()) for w in ("trusted", "rough", "do")}
    law = judged["law"].iloc[0]
    decades = judged["decades"].median()
    return (f"**{law}**, fitted without the largest runs and asked to predict them "
            f"({decades:.1f} decades beyond its data): {counts['trusted']} of {len(judged)} "
            f"fits were **trusted** (held-out error within 2x their own scatter), "
            f"{counts['rough']} **rough** (within 5x), {counts['do']} **not to be "
            f"extrapolated**; median held-out error {judged['mae'].median():.3g}, worst "
            f"{judged['max_error'].max():.3g}. Beyond {decades:.1f} decades no fit here "
            "has been tested.")
