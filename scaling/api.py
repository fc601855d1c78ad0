"""The public functions behind every `scaling` subcommand (torch-free until called).

Each imports its implementation lazily, so `import scaling` and the torch-free commands
(`run`, `status`, `collect`, `fit`, `report`, `submit`) never import torch. Notebooks call
these directly: `expand_sweep(...)`, `run_local(...)`, `collect(...)`, `report(...)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from contract.config import RunConfig, load_run_config

REPO = Path(__file__).resolve().parent.parent
DEMO_SWEEP = (Path(__file__).parent / "configs" / "demo.yaml").resolve()
"""The demo's sweep file, shipped in the package (scaling/configs links to configs/)."""


def _as_config(config: Union[RunConfig, str, Path]) -> tuple[RunConfig, Optional[Path]]:
    if isinstance(config, RunConfig):
        return config, None
    return load_run_config(config), Path(config).resolve().parent


def sweep(sweep_file: str, root: str = "sweeps", parallel: int = 2) -> Path:
    """Expand SWEEP_FILE into ROOT/<name>/runs/<run_id>/config.yaml and manifest.csv, and
    print the study's estimated wall time on this host.

    Args:
        sweep_file: the sweep YAML (docs/design.md format).
        root: folder that holds sweep folders.
        parallel: runs at a time the wall-time estimate assumes (`scaling run --parallel`).
    """
    _check_parallel(parallel)
    from scaling import logs
    from scaling.sweep import expand_sweep
    from slurm.eta import sweep_summary

    logs.setup()  # its warnings read `warning: ...` in a notebook as on the command line

    out = expand_sweep(sweep_file, root)
    from contract.runfolder import read_manifest

    rows = read_manifest(out / "manifest.csv")
    print(f"{out}: {len(rows)} runs")
    line = sweep_summary(rows, parallel)
    if line:
        print(line)
    return out


def _check_parallel(parallel) -> None:
    from contract.errors import ConfigError

    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise ConfigError(f"parallel={parallel!r} is invalid: use at least 1 run at a time")


expand_sweep = sweep


def run(sweep_dir: str, local: bool = False, parallel: int = 2, retry_failed: bool = False,
        progress: bool = True) -> dict:
    """Run every unfinished run of SWEEP_DIR (train, then transfer).

    Args:
        sweep_dir: a folder made by `scaling sweep`.
        local: run here (required today: `scaling submit` sends to Slurm).
        parallel: runs at a time.
        retry_failed: also rerun runs whose last phase failed.
        progress: show a progress bar over runs.
    """
    from contract.errors import ConfigError

    if not local:
        raise ConfigError("run: --local is required (use `scaling submit` for Slurm)")
    _check_parallel(parallel)
    from slurm.local import run_local as _run_local

    return _run_local(sweep_dir, parallel=parallel, retry_failed=retry_failed,
                      progress=progress)


def run_local(sweep_dir: str, parallel: int = 2, retry_failed: bool = False) -> dict:
    """Notebook spelling of `scaling run SWEEP_DIR --local`."""
    return run(sweep_dir, local=True, parallel=parallel, retry_failed=retry_failed)


def train(config: Union[RunConfig, str], run_dir: Optional[str] = None) -> str:
    """Pretrain one run; returns its train phase (`done` on success).

    Args:
        config: a RunConfig or the path of a run's config.yaml.
        run_dir: the run folder (default: the folder holding the config file).
    """
    from scaling.engine import train as _train

    cfg, folder = _as_config(config)
    target = run_dir or folder
    if target is None:
        from contract.errors import ConfigError

        raise ConfigError("train: give run_dir when passing a RunConfig object")
    return _train(cfg, target)


def transfer(config: Union[RunConfig, str], run_dir: Optional[str] = None) -> dict:
    """Linear-probe the finished trunk of a run on each of its targets (plus the floor)."""
    from scaling.allocator import pin_heap
    from scaling.transfer import transfer as _transfer

    pin_heap()
    cfg, folder = _as_config(config)
    target = run_dir or folder
    if target is None:
        from contract.errors import ConfigError

        raise ConfigError("transfer: give run_dir when passing a RunConfig object")
    return _transfer(cfg, target)


def submit(sweep_dir: str, profile: Optional[str] = None, dry_run: bool = False,
           retry_failed: bool = False, throttle: Optional[int] = None) -> dict:
    """Submit SWEEP_DIR's unfinished runs to Slurm: one array per resource shape and phase.

    Renders `<sweep>/slurm/submit-NNN/*.sbatch`, submits them with `sbatch --parsable`
    (transfer after its train task with aftercorr, a finish job after all with afterany)
    and records the job ids in `<sweep>/slurm/jobs.json`. Done runs and runs already
    queued or running are skipped.

    Args:
        sweep_dir: a folder made by `scaling sweep`.
        profile: cluster profile YAML (default: slurm/profiles/default.yaml, CPU nodes).
        dry_run: render the scripts and print the sbatch lines, submit nothing.
        retry_failed: also resubmit runs whose last phase failed.
        throttle: at most this many tasks of one array at a time (default: the profile's).
    """
    from slurm.submit import submit as _submit

    return _submit(sweep_dir, profile=profile, dry_run=dry_run, retry_failed=retry_failed,
                   throttle=throttle)


def status(sweep_dir: str) -> list[dict]:
    """Print a table of runs: phases, attempts, Slurm job and state, stale heartbeat, error.

    state.json of every run joined with squeue (and sacct where accounting exists) for the
    jobs recorded in `<sweep>/slurm/jobs.json`; without Slurm the Slurm columns are empty.

    Args:
        sweep_dir: a sweep folder.
    """
    from contract.errors import RunError
    from contract.runfolder import require_sweep
    from slurm.status import print_table, status_rows

    require_sweep(sweep_dir)
    problems: list[str] = []
    rows, footer = status_rows(sweep_dir, problems)
    print_table(rows, footer)
    if problems:
        raise RunError("; ".join(problems))
    return rows


def cancel(sweep_dir: str) -> list[str]:
    """scancel every job of SWEEP_DIR still queued or running (runs end `cancelled`).

    Args:
        sweep_dir: a sweep folder submitted with `scaling submit`.
    """
    from slurm.submit import cancel as _cancel

    return _cancel(sweep_dir)


def materialize(run_config: str, out: str, fmt: str = "webdataset", n: Optional[int] = None,
                shard_size: int = 1000, overwrite: bool = False) -> Path:
    """Write the synthetic world's first N images with their raw hashtags as WebDataset shards
    or a Hugging Face parquet dataset (then usable as data.source webdataset / hf).

    Args:
        run_config: a run config (or sweep base) whose `data` section and model.image_size
            name the world.
        out: the folder to write (refused if not empty unless overwrite).
        fmt: webdataset or hf.
        n: images to write (default: data.images).
        shard_size: images per tar / parquet file.
        overwrite: replace a previous materialization (never any other folder, the
            current folder or one holding the config).
    """
    from data.materialize import materialize as _materialize

    cfg, _ = _as_config(run_config)
    path = _materialize(cfg.data, cfg.model.image_size, out, fmt=fmt, n=n,
                        shard_size=shard_size, overwrite=overwrite,
                        protect=[run_config] if isinstance(run_config, (str, Path)) else [])
    print(f"wrote {path}: use data.source={'hf' if fmt == 'hf' else 'webdataset'} "
          f"data.path={path}")
    return path


def dedup(run_config: str, out_dir: str, target: str = "fine",
          n_test: Optional[int] = None) -> Path:
    """Find near-duplicates of a target's test images in the pretraining set of RUN_CONFIG
    and write them to OUT_DIR/dedup/<dataset>__<target>.json (the paper's lower bound).

    Args:
        run_config: a run config naming the pretraining data.
        out_dir: folder under which dedup/ is written.
        target: target task whose test split is checked.
        n_test: test images to check (default: transfer.test_images).
    """
    from data import write_duplicates

    cfg, _ = _as_config(run_config)
    path = write_duplicates(cfg.data, cfg.model.image_size, target, out_dir,
                            cfg.transfer.test_images if n_test is None else n_test)
    print(f"wrote {path}")
    return path


def sampling(paths: list[str], overwrite: bool = False) -> dict:
    """Write sampling.json (what the resampling shows: distinct images, repeats, tail
    share) for the runs of PATHS (run or sweep folders) that lack it.

    Args:
        paths: run folders (holding config.yaml) or sweep folders, one or more.
        overwrite: rewrite the file of runs that already have one.
    """
    from scaling.sampling import backfill

    out = backfill([Path(p) for p in ([paths] if isinstance(paths, str) else paths)],
                   overwrite=overwrite)
    for run in out["written"]:
        print(f"wrote {run / 'sampling.json'}")
    print(f"sampling.json: {len(out['written'])} written, {len(out['kept'])} kept "
          "(already there)")
    return out


def _sweep_list(sweep_dirs: Union[str, Path, list[Union[str, Path]]]) -> list[Path]:
    """One folder (str or Path) or a list of them; a str is one path, never its letters."""
    if isinstance(sweep_dirs, (str, Path)):
        return [Path(sweep_dirs)]
    return [Path(d) for d in sweep_dirs]


def collect(sweep_dirs: Union[str, Path, list[Union[str, Path]]], write: bool = True):
    """Gather every run x target x protocol of the sweeps into results.parquet (pandas).

    ``sweep_dirs``: a sweep folder (the Path `expand_sweep` returns, or a str) or a list.
    """
    from analysis import collect as _collect

    folders = list(dict.fromkeys(p.resolve() for p in _sweep_list(sweep_dirs)))
    df = _collect(*folders, write=write)
    print(f"{len(df)} rows from {len(folders)} sweep(s)")
    return df


def _names(value: Optional[str]) -> list[str]:
    """A comma-separated list of column names from the command line ('' -> none)."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def fit(sweep_dir: str, x: str = "dataset_images", y: str = "top1", law: str = "loglinear",
        by: str = "width,vocab,target,protocol", best: Optional[str] = None,
        frontier_bins: Optional[int] = None, units: Optional[str] = None, n_boot: int = 200):
    """Fit LAW of Y against X per group of BY and print the table (analysis.fit_groups).

    Args:
        sweep_dir: a sweep folder.
        x: the x column, or several joined by commas for a joint law
            (--x params,dataset_images --law joint).
        y: the y column (or error / top5_error, from top1 / top5).
        law: a registered law: loglinear, power, saturating, joint, ...
        by: columns to group by, comma-separated ('' fits the whole table once).
        best: with frontier_bins, which run is best per bin: min (errors) or max
            (accuracies); default from the law.
        frontier_bins: fit only the best run per bin of x (the compute frontier).
        units: percent or fraction, for error / top5_error (default: read from values).
        n_boot: bootstrap replicates per fit (0: no intervals, fast).
    """
    import warnings

    from analysis import collect as _collect
    from analysis import fit_groups, get_law
    from analysis.collect import RESULTS_FILE, write_results
    from analysis.fit import FitWarning, require_numbers
    from contract.errors import ConfigError

    xs = _names(x)
    if not xs:
        raise ConfigError(f"x={x!r} is invalid: name a column, e.g. dataset_images")
    try:
        get_law(law)
        df = _collect(sweep_dir, write=False)  # written only once the fit's inputs check
        require_numbers(df, xs, y, units)  # a text or empty column: named, in one line
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FitWarning)
            table = fit_groups(df, x=xs[0] if len(xs) == 1 else xs, y=y, law=law,
                               by=_names(by), best=best, frontier_bins=frontier_bins,
                               units=units, n_boot=n_boot)
    except KeyError as exc:  # unknown law or column: the message names it and the options
        raise ConfigError(str(exc.args[0]) if exc.args else str(exc)) from None
    write_results(df, Path(sweep_dir) / RESULTS_FILE)
    print(table.to_string(index=False))
    import sys

    # each doubt once, one line each (the table's warning column holds them per group)
    for text in dict.fromkeys(str(w.message) for w in caught
                              if issubclass(w.category, FitWarning)):
        print(f"warning: {' '.join(text.split())}", file=sys.stderr)
    return table


def report(sweep_dir: str, findings: Optional[str] = None,
           registry: Optional[str] = None) -> Path:
    """Collect, fit and render SWEEP_DIR/report/report.html (executed notebook).

    Args:
        sweep_dir: a sweep folder.
        findings: the findings YAML that decides the Findings section (default:
            configs/findings.yaml).
        registry: the registry of studies the Findings header checks the sweep against
            (default: records/registry.yaml when it exists; without one the report is
            exploratory).
    """
    from analysis import report as _report
    from analysis.registry import registration

    path = _report(sweep_dir, findings_config=findings, registry=registry)
    print(f"report: {Path(path).resolve()}")
    print(f"findings: {registration(sweep_dir, findings, registry).line}")
    return path


def register(sweep_dir: str, id: Optional[str] = None, reason: Optional[str] = None,
             findings: Optional[str] = None, registry: Optional[str] = None) -> dict:
    """Print the registry entry of SWEEP_DIR, a study none of whose runs has started, to
    paste into records/registry.yaml and commit before the runs.

    Args:
        sweep_dir: a sweep folder made by `scaling sweep`, not run yet.
        id: the study's name in the registry (letters, digits, . _ + -).
        reason: one line on the choices made at registration (e.g. which form of a
            verdict is registered, and why).
        findings: the findings YAML that will decide the verdicts (default:
            configs/findings.yaml).
        registry: the registry to check the id against (default: records/registry.yaml
            when it exists).
    """
    import yaml

    from analysis.registry import entry, load_registry
    from contract.errors import ConfigError
    from contract.runfolder import SAFE_NAME, read_json, require_sweep

    require_sweep(sweep_dir)
    if not id or not SAFE_NAME.match(id):
        raise ConfigError(f"--id={id!r} is invalid: name the study with letters, digits and "
                          ". _ + -, e.g. --id paper-mini-1")
    if not reason or not reason.strip():
        raise ConfigError(f"--reason={reason!r} is invalid: say in one line why the study's "
                          "choices were made, e.g. --reason 'finding 5 judged in images: ...'")
    taken = [e["id"] for e in load_registry(registry)]
    if id in taken:
        raise ConfigError(f"--id={id!r} is already registered: a changed design or rule is a "
                          "new study with a new entry; give it a new id")
    source = (read_json(Path(sweep_dir) / "study.json") or {}).get("sweep_file")
    if source and Path(source).is_relative_to(REPO):
        source = str(Path(source).relative_to(REPO))
    found = entry(sweep_dir, id, " ".join(reason.split()), findings, source)
    print(yaml.safe_dump([found], sort_keys=False, width=100), end="")
    return found


def demo(root: str = "sweeps", parallel: int = 2, sweep_file: Optional[str] = None) -> Path:
    """The whole study in miniature on this CPU: sweep, run, collect, report.

    Args:
        root: where the demo sweep folder goes.
        parallel: runs at a time.
        sweep_file: another sweep file (default configs/demo.yaml).
    """
    import time

    start = time.perf_counter()
    sweep_dir = sweep(sweep_file or str(DEMO_SWEEP), root, parallel)
    run(str(sweep_dir), local=True, parallel=parallel)
    path = report(str(sweep_dir))
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    print(f"open {Path(path).resolve()}")
    return path
