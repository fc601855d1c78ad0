"""Training-step throughput of the CPU members: images/s, and channels_last vs NCHW side by side.

    python bench/bench_train.py [--widths 4 8 16] [--batch 128] [--threads 1] [--steps 6]
"""

from __future__ import annotations

import argparse
import time

import torch

from models import create_model, forward_flops
from scaling.recipe import loss_fn


def step_rate(width: int, batch: int, steps: int, channels_last: bool, image_size: int) -> float:
    torch.manual_seed(0)
    model = create_model("resnext", num_classes=300, depth=11, stages=3, cardinality=8,
                         width_per_group=width, base_width=16, stem="small")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, image_size, image_size).contiguous(memory_format=fmt)
    y = torch.softmax(torch.randn(batch, 300), 1)
    best = float("inf")
    for i in range(steps + 2):
        start = time.perf_counter()
        loss = loss_fn(model(x), y, "soft")
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            best = min(best, time.perf_counter() - start)
    return batch / best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--image_size", type=int, default=32)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"train step, {a.image_size} px, batch {a.batch}, {a.threads} thread(s)")
    print(f"{'width':>5s} {'MFLOPs/img':>11s} {'NCHW img/s':>11s} {'CL img/s':>9s} {'CL/NCHW':>8s}")
    for width in a.widths:
        model = create_model("resnext", num_classes=300, depth=11, stages=3, cardinality=8,
                             width_per_group=width, base_width=16, stem="small")
        mflops = forward_flops(model, a.image_size) / 1e6
        nchw = step_rate(width, a.batch, a.steps, False, a.image_size)
        cl = step_rate(width, a.batch, a.steps, True, a.image_size)
        print(f"{width:5d} {mflops:11.1f} {nchw:11.0f} {cl:9.0f} {cl / nchw:8.2f}")


if __name__ == "__main__":
    main()
