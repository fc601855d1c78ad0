"""How much a pretraining set of N images tells about the fine concepts (no training needed).

    python bench/world_coverage.py [--config configs/base-cpu.yaml] [--sizes 1000 4000 16000]

Prints `data.coverage.coverage` as a markdown table (data/README.md quotes it).
"""

from __future__ import annotations

import argparse

from contract.config import load_run_config
from data.coverage import coverage


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/base-cpu.yaml")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000, 64000])
    args = ap.parse_args(argv)
    from data.pretrain import world_for

    cfg = load_run_config(args.config)
    world = world_for(cfg.data, cfg.model.image_size)
    rows = [coverage(world, n) for n in args.sizes]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k])
                                for k in keys) + " |")


if __name__ == "__main__":
    main()
