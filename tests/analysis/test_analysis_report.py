"""Figures, the notebook report, and the no-torch import rule."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import analysis
from analysis import CollectWarning, collect, fit_groups, plot_scaling, plot_status, report


def _collect(sweep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollectWarning)
        return collect(sweep, write=False)


def _data_axes(fig):
    return [ax for ax in fig.axes if ax.lines or ax.texts or ax.collections]


def test_plot_scaling_has_a_log_panel_per_vocab_and_target_with_lines_per_width(sweep):
    df = _collect(sweep)
    fig = plot_scaling(df, fit_groups(df, n_boot=0))
    assert isinstance(fig, Figure)
    axes = _data_axes(fig)
    assert len(axes) == 2 * 2  # vocab x target
    ax = axes[0]
    assert ax.get_xscale() == "log"
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    fitted = [line for line in ax.lines
              if line.get_linestyle() == "-" and len(line.get_xdata()) > 10]
    assert len(dashed) == 2 and len(fitted) == 2  # a floor and a fitted line per width
    assert len(ax.containers) == 2  # error bars per width (3 seeds)


def test_plot_scaling_handles_one_width_one_vocab_one_target_and_no_done_runs(tmp_path):
    from analysis.fakes import make_sweep
    df = _collect(make_sweep(tmp_path, widths=(8,), vocabs=("all",), targets=("fine",),
                             seeds=(0,), problems=False))
    fig = plot_scaling(df, target="fine")
    assert len(_data_axes(fig)) == 1
    empty = plot_scaling(df[df.status != "done"])
    assert "no done runs" in empty.axes[0].texts[0].get_text()
    fig.savefig(tmp_path / "one.png")


def test_plot_status_counts_runs_not_rows(sweep):
    fig = plot_status(_collect(sweep))
    ax = fig.axes[0]
    assert sorted(int(p.get_width()) for p in ax.patches) == [1, 1, 1, 36]


FIGURES = ("scaling", "model_size", "vocab_target", "ablation_resample",
           "ablation_label_noise", "frontier", "telemetry", "status")


@pytest.mark.slow  # executes the whole report notebook: ~12 s
@pytest.mark.integration
def test_report_writes_html_with_every_figure_tables_and_files(make):
    import base64
    sweep = make(ablations=True, vocabs=(1000,), world=43)
    html = report(sweep, n_boot=20, n_boot_nonlinear=2, budget_hours=5.0)
    out = sweep / "report"
    assert html == out / "report.html"
    text = html.read_text()
    for name in FIGURES:  # each figure as PNG and SVG, and that very PNG inside the HTML
        png = out / "figures" / f"{name}.png"
        assert png.stat().st_size > 1000 and (out / "figures" / f"{name}.svg").exists()
        assert base64.b64encode(png.read_bytes()).decode()[:400] in text, name
    assert sorted(p.stem for p in (out / "figures").glob("*.png")) == sorted(FIGURES)
    assert "points / 10x images" in text and "95% CI" in text  # log-linear fit table
    for words in ("Laws beyond the paper", "alpha", "trusted", "Budget <strong>5 device-hours",
                  "device_hours", "Training telemetry", "MFU", "Random-trunk floor",
                  "CUDA out of memory", "abc1234", "data seed 43;"):
        assert words in text, words
    assert "Traceback" not in text
    fits = json.loads((out / "fits.json").read_text())
    assert fits["schema_version"] == 1 and len(fits["fits"]) == 4  # width x target
    # fits.json holds exactly the fits of the sweep's main grid (same bootstrap seed), and
    # they recover the fabricated slope: a report writing wrong or stale numbers fails
    from analysis import main_grid
    from analysis.fakes import true_b

    again = fit_groups(main_grid(_collect(sweep)), x="dataset_images", y="top1", n_boot=20)
    for f, (_, row) in zip(fits["fits"], again.iterrows()):
        assert (f["width"], f["target"]) == (row.width, row.target)
        assert [f["b_lo"], f["b"], f["b_hi"]] == pytest.approx([row.b_lo, row.b, row.b_hi])
        assert abs(f["b"] - true_b(f["width"], 1000)) < 1.0 and f["b_hi"] - f["b_lo"] > 0.2
    assert {"power", "saturating", "joint", "extrapolation", "plan"} <= set(fits)
    assert (sweep / "results.parquet").exists() and (out / "report.ipynb").exists()


def test_ablation_axes_are_only_those_the_sweep_varies(sweep, make):
    from analysis import ablation_axes, plot_ablation
    assert ablation_axes(_collect(sweep)) == []  # the report then says so, without figures
    df = _collect(make(name="abl", ablations=True, problems=False, seeds=(0,)))
    assert ablation_axes(df) == ["resample", "label_noise"]
    fig = plot_ablation(df, "resample")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["natural", "sqrt", "uniform"]


def test_report_without_execute_writes_only_the_parameterised_notebook(sweep, tmp_path):
    notebook = report(sweep, out=tmp_path / "r", execute=False)
    assert notebook == tmp_path / "r" / "report.ipynb"
    text = notebook.read_text()
    assert str(sweep) in text and not (tmp_path / "r" / "report.html").exists()


def test_template_has_kernel_metadata_and_a_parameters_cell():
    nb = json.loads((Path(analysis.__file__).parent / "templates" / "report.ipynb").read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["metadata"]["language_info"]["name"] == "python"
    assert any("parameters" in c["metadata"].get("tags", []) for c in nb["cells"])


@pytest.mark.integration
@pytest.mark.parametrize("modules", ["analysis", "analysis, analysis.plots, analysis.report"])
def test_import_analysis_does_not_import_torch(modules):
    code = (f"import sys, {modules}; analysis.plot_scaling; analysis.report; "
            "print('torch' in sys.modules)")
    root = Path(analysis.__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "False"
