"""The CPU training step of the recipe's models, side by side: memory format, precision
and `torch.compile` (inductor) against NCHW fp32 eager, in interleaved rounds.

    python bench/bench_train.py [--widths 4 16] [--batch 128] [--threads 1] [--rounds 7]
                                [--image_size 16] [--no-compile]

Every case runs the engine's recipe on random tensors: SGD with Nesterov, autocast over
fp32 weights where the case is bf16, the soft-target loss. The figure is each case's
images/s over the baseline's in the same round (bench/ratio.py). What a case is worth
depends on the CPU: bf16 autocast is fast only with AVX512-BF16 or AMX (the host line
names the flags), so quote the host with every ratio. `compiled` pays its compile once
per process before the rounds (printed: a run must train long enough to earn it back).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ratio import interleave, ratios, table, timed, write  # noqa: E402

from models import create_model, forward_flops  # noqa: E402
from scaling.recipe import loss_fn  # noqa: E402

CASES = {  # name -> (channels_last, precision, compiled)
    "nchw fp32": (False, "fp32", False),
    "channels_last fp32": (True, "fp32", False),
    "channels_last fp32 compiled": (True, "fp32", True),
    "channels_last bf16": (True, "bf16", False),
    "channels_last bf16 compiled": (True, "bf16", True),
}
BASELINE = "nchw fp32"
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def host_line() -> str:
    """The CPU model and the flags that decide these ratios."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    have = [f for f in FLAGS if f in flags]
    return f"host: {model}; flags: {' '.join(have) or 'none of ' + ', '.join(FLAGS)}; " \
           f"torch {torch.__version__}"


def make_step(width: int, batch: int, image_size: int, channels_last: bool, precision: str,
              compiled: bool):
    """One training step of the recipe as a callable; returns (step, compile seconds)."""
    torch.manual_seed(0)
    model = create_model("resnext", num_classes=464, depth=11, stages=3, cardinality=8,
                         width_per_group=width, base_width=16, stem="small")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    forward = torch.compile(model) if compiled else model
    x = torch.randn(batch, 3, image_size, image_size).contiguous(memory_format=fmt)
    y = torch.softmax(torch.randn(batch, 464), 1)
    bf16 = precision == "bf16"

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(x)
        loss_fn(logits, y, "soft").backward()
        opt.step()

    start = time.perf_counter()
    step()  # the compile (or the first eager step)
    return step, time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--image_size", type=int, default=16)
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(host_line())
    results: dict = {}
    for width in a.widths:
        flops = forward_flops(create_model("resnext", num_classes=464, depth=11, stages=3,
                                           cardinality=8, width_per_group=width,
                                           base_width=16, stem="small"), a.image_size)
        cases, first = {}, {}
        for name, (cl, prec, comp) in CASES.items():
            if comp and not a.compile:
                continue
            step, first[name] = make_step(width, a.batch, a.image_size, cl, prec, comp)
            cases[name] = timed(step, a.steps, per_call=a.batch)
        rows = ratios(interleave(cases, a.rounds), BASELINE)
        title = (f"width {width} ({flops / 1e6:.1f} MFLOPs/img), {a.image_size} px, batch "
                 f"{a.batch}, {a.threads} thread(s); first step (compile) s: "
                 + ", ".join(f"{k} {v:.1f}" for k, v in first.items()))
        print(table(title, rows))
        results[f"w{width}"] = rows
        results[f"w{width}_first_step_s"] = first
    write("train_step_cpu", {"host": host_line(), **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
