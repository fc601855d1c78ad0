"""The control plane at paper scale and beyond: expanding and estimating a sweep, rendering
its sbatch scripts, collecting its result rows and fitting them, at N runs against the same
work at a small baseline size (per-run cost ratio: 1.0 = linear scaling, nothing quadratic).

    python bench/bench_control.py [--runs 10000] [--baseline 100] [--rounds 3]

Each step runs at both sizes in interleaved rounds; the figure is the per-run time at N
over the per-run time at the baseline size (lower is better; below 1.0 means fixed costs
amortise).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import ratio  # noqa: E402


def grid(n_runs: int) -> dict:
    """A sweep spec of about n_runs runs: 5 widths x 4 vocabularies x 10 sizes x seeds."""
    seeds = max(1, math.ceil(n_runs / 200))
    return {"widths": (4, 8, 16, 32, 48), "vocabs": (16, 64, 256, "all"),
            "images": tuple(int(10 ** (3 + k / 3)) for k in range(10)),
            "seeds": tuple(range(seeds))} if n_runs >= 200 else \
        {"widths": (4, 16), "vocabs": (100, "all"),
         "images": tuple(int(10 ** (3 + k / 3)) for k in range(max(1, n_runs // 8))),
         "seeds": (0, 1)}


def sweep_file(tmp: Path, n_runs: int) -> Path:
    g = grid(n_runs)
    # the largest sets (4.6M images) need more host memory than base-cpu's 4 GB: their
    # uint8 cache and per-image index (contract.config) take 4.0 GiB
    spec = {"name": f"control-{n_runs}", "base": str(REPO / "configs" / "base-cpu.yaml"),
            "set": {"resources.mem_gb": 16},
            "axes": {"model.width_per_group": list(g["widths"]),
                     "data.vocab": [v for v in g["vocabs"]],
                     "data.images": list(g["images"])},
            "seeds": list(g["seeds"])}
    path = tmp / f"control-{n_runs}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--baseline", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)

    from analysis import collect, fit_groups
    from analysis.fakes import make_sweep
    from scaling.sweep import expand_sweep
    from slurm.submit import submit

    tmp = Path(tempfile.mkdtemp(prefix="bench-control-"))
    sizes = {"N": a.runs, "baseline": a.baseline}
    counts: dict[str, dict[str, int]] = {}
    try:
        files = {k: sweep_file(tmp, n) for k, n in sizes.items()}
        expanded = {k: expand_sweep(f, tmp / "expanded") for k, f in files.items()}
        fakes = {k: make_sweep(tmp / "fake", name=f"fake-{k}", **{
            key: val for key, val in grid(n).items()}, problems=False, ceiling=95.0)
            for k, n in sizes.items()}
        tables = {k: collect(fakes[k], write=False) for k in sizes}

        def per_run(step: str, key: str, fn, n: int):
            def rate():
                start = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    fn()
                counts.setdefault(step, {})[key] = n
                return n / (time.perf_counter() - start)  # runs per second
            return rate

        def expand(key):
            out = tmp / f"re-{key}"
            shutil.rmtree(out, ignore_errors=True)
            return lambda: expand_sweep(files[key], out)

        steps = {
            "expand + estimate": {k: expand(k) for k in sizes},
            "render (submit --dry_run)": {k: (lambda k=k: submit(expanded[k], dry_run=True))
                                          for k in sizes},
            "collect": {k: (lambda k=k: collect(fakes[k], write=False)) for k in sizes},
            "fit (loglinear, by group)": {k: (lambda k=k: fit_groups(tables[k], n_boot=50))
                                          for k in sizes},
        }
        rows = []
        n_rows = {k: len(tables[k]) for k in sizes}
        for step, fns in steps.items():
            unit = n_rows if step.startswith(("collect", "fit")) else {
                k: len(list((expanded[k] / "runs").iterdir())) for k in sizes}
            cases = {k: per_run(step, k, fns[k], unit[k]) for k in sizes}
            samples = ratio.interleave(cases, a.rounds, warmup=0)
            # per-run time at N over per-run time at the baseline = rate_base / rate_N
            (r,) = ratio.ratios({"time": samples["baseline"], "N": samples["N"]}, "N")
            r.case = f"{step} ({unit['N']} vs {unit['baseline']})"
            r.rate, r.baseline_rate = (1000 / max(samples["N"]) if samples["N"] else 0,
                                       1000 / max(samples["baseline"]))
            rows.append(r)
        print(ratio.table(f"control plane: per-run time at {a.runs} runs / at {a.baseline} "
                          "runs (1.0 = linear)", rows, unit="ms/run"))
        print(ratio.write("control", {"config": vars(a), "rows": rows}).as_posix())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
