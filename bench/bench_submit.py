"""`scaling submit --dry_run` render time on the paper's grid (5 widths x 4 sizes x 3
vocabularies = 60 runs). Expanding the grid (`scaling sweep`, which imports torch for
parameter counts) happens first and is not timed; the timed part is the dry-run render, in
a fresh interpreter (what a user waits for) and in-process, and the bench checks that
every rendered script passes `bash -n` and that torch was never imported.

    python bench/bench_submit.py [--repeat 3] [--profile slurm/profiles/default.yaml]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from bench_sweep import write_paper_grid  # noqa: E402

CHILD = """import sys, time
t0 = time.perf_counter()
from scaling.cli import main
rc = main(['submit', sys.argv[1], '--dry_run', '--profile', sys.argv[2]])
print('RENDER_S', time.perf_counter() - t0, 'TORCH', 'torch' in sys.modules, 'RC', rc)
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", default=str(REPO / "slurm" / "profiles" / "default.yaml"))
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paper = write_paper_grid(tmp)
        from scaling.sweep import expand_sweep  # imports torch; not timed

        t0 = time.perf_counter()
        sweep = expand_sweep(paper, tmp / "sweeps")
        expand_s = time.perf_counter() - t0
        runs = len(list((sweep / "runs").iterdir()))

        fresh, inproc, torch_seen = [], [], False
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, str(sweep), a.profile],
                                  capture_output=True, text=True)
            fresh.append(time.perf_counter() - t0)
            if proc.returncode != 0 or "RC 0" not in proc.stdout:
                print(proc.stdout, proc.stderr)
                return 1
            torch_seen |= "TORCH True" in proc.stdout
        from slurm.submit import submit

        for _ in range(a.repeat):
            t0 = time.perf_counter()
            with redirect_stdout(io.StringIO()):
                submit(sweep, profile=a.profile, dry_run=True)
            inproc.append(time.perf_counter() - t0)
        scripts = sorted((sweep / "slurm").rglob("*.sbatch")) + sorted(
            (sweep / "slurm").glob("*_task.sh"))
        bad = [p.name for p in scripts
               if subprocess.run(["bash", "-n", str(p)], capture_output=True).returncode]
    print(f"paper grid: {runs} runs, expanded in {expand_s:.2f} s (not timed below)")
    print(f"{'submit --dry_run':34s} {'best s':>7s} {'median s':>9s} {'ms/run':>7s}")
    for name, times in (("fresh interpreter (CLI, wall)", fresh), ("in-process render", inproc)):
        times = sorted(times)
        print(f"{name:34s} {times[0]:7.3f} {times[len(times) // 2]:9.3f} "
              f"{1000 * times[0] / runs:7.2f}")
    print(f"scripts checked with bash -n: {len(scripts)}, invalid: {bad or 'none'}; "
          f"torch imported by submit --dry_run: {torch_seen}")
    return 1 if bad or torch_seen else 0

if __name__ == "__main__":
    sys.exit(main())
