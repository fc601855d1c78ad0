"""Sweep expansion time: the demo sweep and the paper's grid (5 widths x 4 sizes x 3 vocabs).

    python bench/bench_sweep.py [--full]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from scaling.sweep import expand_sweep

REPO = Path(__file__).resolve().parent.parent

def write_paper_grid(tmp: Path) -> Path:
    """The paper's grid as a sweep file in `tmp`, over the CPU base with the in-memory
    cache off (3.5M-3.5B images never fit in RAM: config validation refuses a cache that
    would), the host memory the per-image index of 3.5B images takes (160 B an image,
    contract.config.index_bytes_per_image: 522 GiB) and vocabularies this world has (464
    canonical tags)."""
    base = yaml.safe_load((REPO / "configs" / "base-cpu.yaml").read_text())
    base["data"]["cache"] = False
    base["resources"]["mem_gb"] = 540
    (tmp / "paper-base.yaml").write_text(yaml.safe_dump(base))
    spec = {"name": "paper-grid", "base": str(tmp / "paper-base.yaml"),
            "axes": {"model.width_per_group": [4, 8, 16, 32, 48],
                     "data.images": [3_500_000, 35_000_000, 350_000_000, 3_500_000_000],
                     "data.vocab": [100, 300, "matched:fine"]}}
    path = tmp / "paper.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def timed(sweep: Path, root: Path) -> tuple[float, int]:
    start = time.perf_counter()
    out = expand_sweep(sweep, root)
    runs = len(list((out / "runs").iterdir()))
    return time.perf_counter() - start, runs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows = [("demo", *timed(REPO / "configs" / "demo.yaml", tmp))]
        if a.full:
            rows.append(("paper grid (60 runs)", *timed(write_paper_grid(tmp), tmp)))
    print(f"{'sweep':24s} {'runs':>5s} {'seconds':>8s} {'ms/run':>7s}")
    for name, seconds, runs in rows:
        print(f"{name:24s} {runs:5d} {seconds:8.2f} {1000 * seconds / runs:7.1f}")


if __name__ == "__main__":
    main()
