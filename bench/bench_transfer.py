"""Transfer evaluation cost: feature-extraction throughput, linear / few-shot probe time and
fine-tuning time, on N target train images of the synthetic `fine` target.

    python bench/bench_transfer.py [--images 10000] [--test_images 2000] [--width 8]
                                   [--image_size 32] [--threads 1] [--finetune_images N]

The trunk is the base-cpu member (randomly initialised: cost does not depend on the
weights); fine-tuning runs `scaling.finetune` itself (ddp, one rank, fp32, batch 128) for
`--finetune_images` images seen (default: one pass over the N train images).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path
from typing import cast

import torch

import scaling.transfer as T
from contract.config import RunConfig, from_dict, load_yaml
from scaling import dist

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--test_images", type=int, default=2_000)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--image_size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--finetune_images", type=int, default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from data import build_target_split
    from data.targets import TargetSplit
    from models import Trunk, create_model
    from scaling import recipe
    from scaling.final import export_final, load_trunk
    from scaling.finetune import finetune

    base = load_yaml(REPO / "configs" / "base-cpu.yaml")
    base["model"].update(width_per_group=a.width, image_size=a.image_size)
    ft_images = a.finetune_images or a.images
    base["transfer"] = {"targets": ["fine"], "protocols": ["linear", "finetune"],
                        "train_images": a.images, "test_images": a.test_images,
                        "finetune": {"global_batch": 128, "images_seen": max(128, ft_images)}}
    base["checkpoint"] = {"every_steps": 10**6}
    config: RunConfig = from_dict(RunConfig, base)

    print(f"transfer on `fine`, {a.image_size} px, width {a.width}, {a.threads} thread(s); "
          f"{a.images} train + {a.test_images} test images")
    print(f"{'step':<34s} {'seconds':>8s} {'images/s':>9s}", flush=True)

    def row(name: str, seconds: float, n=None) -> None:
        rate = f"{n / seconds:9.0f}" if n else f"{'':9s}"
        print(f"{name:<34s} {seconds:8.1f} {rate}", flush=True)

    start = time.perf_counter()
    tr_x, tr_y, names = build_target_split(config.data, a.image_size, "fine", "train", a.images)
    te_x, te_y, _ = build_target_split(config.data, a.image_size, "fine", "test", a.test_images)
    n_feat = a.images + a.test_images
    row("render target images", time.perf_counter() - start, n_feat)

    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        torch.manual_seed(0)
        model = cast(Trunk, create_model("resnext", num_classes=10,
                                         **recipe.model_kwargs(config)))
        export_final(run, model.trunk_state_dict(), config, ["x"], model.num_features)
        trunk = load_trunk(run).to(memory_format=torch.channels_last)
        cpu = torch.device("cpu")
        start = time.perf_counter()
        train_f = T.extract_features(trunk, tr_x, cpu)
        test_f = T.extract_features(trunk, te_x, cpu)
        row(f"extract features (dim {train_f.shape[1]})", time.perf_counter() - start, n_feat)
        cfg = copy.deepcopy(config)
        start = time.perf_counter()
        ft = finetune(cfg, run, dist.DistEnv(), "fine", TargetSplit(tr_x, tr_y, names),
                      TargetSplit(te_x, te_y, names))
        row(f"fine-tune {ft['images_seen']} images + eval", time.perf_counter() - start,
            ft["images_seen"] + a.test_images)
        start = time.perf_counter()
        from scaling.probe import linear_probe

        out = linear_probe(train_f, tr_y, test_f, te_y, len(names))
        row(f"linear probe (4 L2 + refit, l2 {out['l2']:g})", time.perf_counter() - start)
        start = time.perf_counter()
        T.fewshot(train_f, tr_y, test_f, te_y, len(names), [1, 5, 10, 25], 5, 1e-2, 0)
        row("few-shot probes (k 1,5,10,25 x 5)", time.perf_counter() - start)


if __name__ == "__main__":
    main()
