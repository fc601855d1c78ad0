"""The finish job (afterany on every array of a submission): print the status table, say
plainly which runs did not finish and why, then `scaling collect` (and `scaling report`,
unless --no_report), each as its own process. Exits 1 when a run is not done or a step
failed, so the job's own state shows that something needs a look.

    python -m slurm.finish SWEEP_DIR [--no_report]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from slurm.tasks import NOCWD


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir")
    ap.add_argument("--no_report", action="store_true")
    args = ap.parse_args(argv)
    sweep = Path(args.sweep_dir)
    print(f"wsl-scaling: finish start sweep={sweep.name} at={time.time():.6f}", flush=True)
    from slurm.status import print_table, status_rows

    try:
        rows, footer = status_rows(sweep)
    except Exception as exc:  # the table is a courtesy: collect and report still run
        import traceback

        traceback.print_exc()
        print(f"finish: status failed: {type(exc).__name__}: {exc}")
        rows, footer = [], []
        rc = 1
    else:
        print_table(rows, footer)
        bad = [r for r in rows if not (r["train"] == "done" and r["transfer"] == "done")]
        for r in bad:
            print(f"NOT DONE {r['run_id']}: train={r['train']} transfer={r['transfer']} "
                  f"slurm={r['slurm'] or '?'} {r['error']}".rstrip())
        rc = 1 if bad else 0
    steps = [["collect", str(sweep)]] + ([] if args.no_report else [["report", str(sweep)]])
    for step in steps:
        # the CLI's own process: slurm/ talks to the steps after it through commands and
        # files, never imports (docs/design.md, Layers); its output lands in this job's log
        code = subprocess.run([sys.executable, "-c", NOCWD, "scaling.cli", *step]).returncode
        if code != 0:
            print(f"finish: `scaling {step[0]}` exited {code} (its error is above)",
                  flush=True)
            rc = 1
            break
    print(f"wsl-scaling: finish end rc={rc} at={time.time():.6f}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
