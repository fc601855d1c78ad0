"""One GPU, the paper's ResNeXt-101 32x8d at 224 px in bf16: the engine's step under each
strategy against a plain torchvision AMP loop timed beside it (images/s, MFU, peak memory).

    python bench/gpu_bench.py [--dry_run] [--out DIR] [--rounds 3] [--steps 10]

Cases, timed in interleaved rounds: the plain loop in NCHW and channels_last; the engine's
`Trainer.train_step` under ddp (both layouts), fsdp2 and DeepSpeed ZeRO-2 (best layout);
`torch.compile` of the plain loop and the engine (ddp) in the best layout. MFU = 3 x forward
FLOPs per image x images/s / the device's dense bf16 peak (989 TFLOP/s for H100 SXM and
H200). `--dry_run` runs the same code on the CPU with a tiny member at 32 px (what CI runs).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import ratio  # noqa: E402

PAPER_32X8D: dict[str, Any] = {
    "arch": "resnext", "depth": 101, "stages": 4, "cardinality": 32, "width_per_group": 8,
    "base_width": 64, "stem": "imagenet", "image_size": 224}
TINY: dict[str, Any] = {
    "arch": "resnext", "depth": 11, "stages": 3, "cardinality": 4, "width_per_group": 4,
    "base_width": 16, "stem": "small", "image_size": 32}
BATCH = {"H200": 192, "H100": 128, "A100": 128, "L40S": 96, "A10": 48}
"""Per-GPU batch for 32x8d at 224 px in bf16 (activations dominate: ~0.35 GiB per image
with the default allocator), by device name fragment, leaving room for the other cases'
resident weights and optimizer state; other devices use 64."""
BF16_PEAK = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362e12,
             "A10": 125e12}


def engine_config(model: dict, shard: dict, batch: int, device: str, channels_last: bool,
                  compile_: bool, precision: str):
    from contract.config import RunConfig, from_dict

    return from_dict(RunConfig, {
        "name": "gpu-bench", "seed": 0, "precision": precision,
        "model": {**model, "channels_last": channels_last},
        "data": {"images": 512, "vocab": "all", "cache": False},
        "optim": {"global_batch": batch, "images_seen": batch * 10 ** 6, "augment": False},
        "shard": {**shard, "compile": compile_},
        "resources": {"device": device, "cpus_per_rank": 4},
        "logging": {"tensorboard": False, "progress": False},
    })


def plain_step(model_cfg: dict, num_classes: int, device, channels_last: bool,
               compile_: bool, precision: str):
    """The textbook loop: torchvision's ResNeXt (the same network), autocast, SGD."""
    import torch

    from models import create_model

    torch.manual_seed(0)
    kwargs = {k: v for k, v in model_cfg.items() if k not in ("arch", "image_size")}
    model = create_model(model_cfg["arch"], num_classes=num_classes, **kwargs).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=1e-4)
    net = torch.compile(model) if compile_ else model
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def step(x, y):
        with torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32"):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


# long by design: a script's command-line flow, case by case
def main(argv=None) -> int:  # noqa: C901
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry_run", action="store_true")
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu_check"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=0, help="0: from the table by device")
    ap.add_argument("--no_compile", action="store_true")
    ap.add_argument("--budget_s", type=float, default=200.0,
                    help="the compiled cases start only if this much minus the time spent "
                         "leaves --compile_s")
    ap.add_argument("--compile_s", type=float, default=60.0,
                    help="start the compiled cases only if this much of --budget_s is left "
                         "(on an H200 both compiles and their timing took about 80 s, inside "
                         "gpu_check.sh's 225 s timeout)")
    ap.add_argument("--only", default="",
                    help="a regular expression: run only the cases it finds in their label "
                         "(the baseline 'plain channels_last' always runs)")
    a = ap.parse_args(argv)
    started = time.monotonic()

    import torch

    from models import create_model, forward_flops
    from scaling import dist
    from scaling.engine import Trainer

    cuda = torch.cuda.is_available() and not a.dry_run
    if not cuda and not a.dry_run:
        print("no CUDA device: run with --dry_run on a CPU machine")
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    name = torch.cuda.get_device_name(0) if cuda else "cpu (dry run)"
    model_cfg = PAPER_32X8D if cuda else TINY
    batch = a.batch or (next((b for k, b in BATCH.items() if k in name), 64) if cuda else 8)
    steps, rounds = (a.steps, a.rounds) if cuda else (1, 1)
    peak = next((p for k, p in BF16_PEAK.items() if k in name), float("nan"))
    precision = "bf16"
    if cuda:
        torch.backends.cudnn.benchmark = True
    env = dist.setup(device.type)

    with torch.device("meta"):
        meta = create_model("resnext", num_classes=1000, **{
            k: v for k, v in model_cfg.items() if k not in ("arch", "image_size")})
    fwd_flops = forward_flops(meta, model_cfg["image_size"])

    def sync():
        if cuda:
            torch.cuda.synchronize()

    trainers: dict[str, Trainer] = {}
    cases: dict[str, Callable[[], float]] = {}
    memory: dict[str, int] = {}
    size = model_cfg["image_size"]

    def batch_for(channels_last: bool, classes: int):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
        return x, torch.randint(0, classes, (batch,), device=device)

    def rate_of(label, fn, x, y):
        probe = ratio.timed(lambda: fn(x, y), steps, sync, per_call=batch)

        def rate():
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            ips = probe()
            if cuda:
                memory[label] = max(memory.get(label, 0), torch.cuda.max_memory_allocated())
            return ips
        return rate

    # (label, shard section, channels_last, compile)
    specs: list[tuple[str, dict[str, Any], bool, bool]] = [
             ("engine ddp NCHW", {"strategy": "ddp"}, False, False),
             ("engine ddp channels_last", {"strategy": "ddp"}, True, False),
             ("engine fsdp2 channels_last", {"strategy": "fsdp2"}, True, False),
             ("engine deepspeed z2 channels_last", {"strategy": "deepspeed", "zero_stage": 2},
              True, False)]
    if not a.no_compile:
        specs.append(("engine ddp channels_last compiled", {"strategy": "ddp"}, True, True))
    wanted = re.compile(a.only) if a.only else None

    def chosen(label: str) -> bool:
        return wanted is None or label == "plain channels_last" or bool(wanted.search(label))

    specs = [spec for spec in specs if chosen(spec[0])]
    failures: dict[str, str] = {}
    reported: set[str] = set()
    compiled: dict[str, Callable[[], float]] = {}

    def record(label: str, exc: Exception) -> None:
        failures[label] = f"{type(exc).__name__}: {exc}"[:300]

    def report_failures() -> None:
        for label, why in failures.items():
            if label not in reported:
                reported.add(label)
                print(f"FAILED {label}: {why}", flush=True)

    classes = None
    for label, shard, cl, comp in specs:
        try:
            t = Trainer(engine_config(model_cfg, shard, batch, device.type, cl, comp,
                                      precision), env)
        except Exception as exc:  # a strategy missing here is a finding, not a crash
            record(label, exc)
            report_failures()
            continue
        trainers[label] = t
        classes = t.pset.num_classes
        x, y = batch_for(cl, classes)
        yy = torch.nn.functional.one_hot(y, classes).float()
        cases[label] = rate_of(label, t.train_step, x, yy)
        if comp:
            compiled[label] = cases[label]
    classes = classes or 1000
    for label, cl, comp in [("plain NCHW", False, False), ("plain channels_last", True, False)] + (
            [] if a.no_compile else [("plain channels_last compiled", True, True)]):
        if not chosen(label):
            continue
        x, y = batch_for(cl, classes)
        cases[label] = rate_of(label, plain_step(model_cfg, classes, device, cl, comp,
                                                 precision), x, y)
        if comp:
            compiled[label] = cases[label]

    baseline = "plain channels_last"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    table: list[dict[str, Any]] = []
    ratio_rows: list[Any] = []

    def drop(label: str, exc: Exception) -> None:
        """Record a failed case and free what it holds, so one out-of-memory does not
        cascade into the cases after it."""
        record(label, exc)
        cases.pop(label, None)
        compiled.pop(label, None)
        trainers.pop(label, None)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    def measure(phase: str, phase_cases: dict[str, Callable[[], float]]) -> None:
        """Warm each case up alone (an out-of-memory or a compile error drops that case,
        recorded, instead of ending the script), time the rest interleaved, then print
        and save everything measured so far: a later phase that runs out of time or
        memory leaves this one on disk."""
        live = {}
        for label, fn in phase_cases.items():
            try:
                fn()
                live[label] = fn
            except Exception as exc:
                drop(label, exc)
        samples = None
        if baseline in live:
            try:
                samples = ratio.interleave(live, rounds, warmup=0)
            except Exception as exc:  # an out-of-memory mid-phase: nothing of it is timed
                record(f"{phase} timing", exc)
        if samples is None:
            print(f"{phase}: nothing timed (the baseline '{baseline}' failed or the timing "
                  "stopped)", flush=True)
            report_failures()
            write_json()
            return
        rows = ratio.ratios(samples, baseline,
                            {k: 1.0 for k in samples if k.startswith("engine")})
        lines = [f"{phase}: device {name}; torch {torch.__version__}; ResNeXt "
                 f"{model_cfg['depth']} 32x{model_cfg['width_per_group']}d-like at {size} px, "
                 f"batch {batch}, {precision}",
                 f"{'case':<40s} {'img/s':>8s} {'MFU':>6s} {'peak GiB':>9s}"]
        for label, values in samples.items():
            ips = sorted(values)[len(values) // 2]
            mfu = 3 * fwd_flops * ips / peak if peak == peak else float("nan")
            gib = memory.pop(label, 0) / 2 ** 30  # this phase's peak only
            # one row per case and phase: the compiled phase times the baseline again
            table.append({"case": label, "phase": phase, "images_per_s": ips, "mfu": mfu,
                          "peak_mem_gib": gib})
            lines.append(f"{label:<40s} {ips:8.1f} {mfu:6.3f} {gib:9.2f}")
        ratio_rows.extend(rows)  # (ratio.ratios gives no row for the baseline itself)
        print("\n".join(lines) + "\n\n" + ratio.table(
            f"{phase}: each case against '{baseline}' (median of {rounds} interleaved "
            "rounds)", rows), flush=True)
        report_failures()
        write_json()

    def write_json() -> None:
        (out / "gpu_bench.json").write_text(json.dumps({
            "device": name, "torch": torch.__version__, "batch": batch, "model": model_cfg,
            "forward_flops_per_image": fwd_flops, "peak_flops": peak, "cases": table,
            "ratios": [r.__dict__ for r in ratio_rows], "failures": failures,
            "skipped": skipped}, indent=1))

    skipped: dict[str, str] = {}
    eager = {k: v for k, v in cases.items() if k not in compiled}
    measure("eager", eager)
    left = a.budget_s - (time.monotonic() - started)
    if compiled and left < a.compile_s:
        skipped.update({k: f"{left:.0f} s of the {a.budget_s:.0f} s budget left, a compile "
                           f"needs about {a.compile_s:.0f} s" for k in compiled})
        print(f"SKIPPED compiled cases: {left:.0f} s left", flush=True)
        write_json()
    elif compiled:
        # the compiled cases against the eager baseline, timed beside it again
        measure("compiled", {**compiled, baseline: cases[baseline]})
    dist.teardown()
    return 1 if failures and not a.dry_run else 0


if __name__ == "__main__":
    sys.exit(main())
