"""Per-command start-up: how long `scaling train` takes to its first step, against a bare
PyTorch process that imports torch, builds the same model and takes one step, side by side.

    python bench/bench_startup.py [--rounds 5] [--breakdown]

Each case is a fresh process (timed from spawn to the end of its first optimizer step),
run in interleaved rounds:
- `bare`: `import torch, models`, build the model, one SGD step on a random batch (the
  floor: the interpreter, torch and torchvision imports, the model).
- `import only`: `import torch, models` and nothing else (how much of the floor is imports).
- `scaling train`: a one-step run of the CPU base config (configs/base-cpu.yaml's model,
  its batch, TensorBoard on, a small data set: generating images scales with their number
  and is not start-up), in a fresh run folder; its first step ends when metrics.jsonl gets
  its first line (logging every step).
Ratios are time / the bare process's time (lower is better); `extra s` is the median of
the per-round differences. A second table holds each process's CPU seconds (user +
system), which a loaded host disturbs far less than wall time. `--breakdown` then profiles
one `scaling train` in-process (cProfile, CPU time) and prints the seconds of each
start-up piece.
Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import ratio  # noqa: E402

BARE = """
import sys, time
import torch, models
if sys.argv[1] == "step":
    import json
    cfg = json.loads(sys.argv[3])
    torch.set_num_threads(1)
    model = models.create_model(cfg.pop("arch"), num_classes=cfg.pop("classes"),
                                **cfg.pop("kwargs")).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(cfg["batch"], 3, cfg["size"], cfg["size"]).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, model.fc.out_features, (cfg["batch"],))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
open(sys.argv[2], "w").write("done")
"""

# the pieces of `--breakdown`: (label, file suffix, function) summed as cProfile cumtime
PIECES = [
    ("CLI: parse argv + config (jsonargparse)", "scaling/cli.py", "main", "minus"),
    ("import scaling.engine (torch, torchvision, ...)", "scaling/engine.py", "<module>", ""),
    ("  of which torchvision (pulls in torch._dynamo)", "torchvision/__init__.py", "<module>", ""),
    ("Trainer: data, model, FLOP count, strategy", "scaling/engine.py", "__init__", ""),
    ("  FLOP count (meta model)", "models/flops.py", "forward_flops", ""),
    ("CPU peak for MFU (cache or measure)", "scaling/telemetry.py", "cpu_peak", ""),
    ("memory.json (profile + estimate)", "scaling/engine.py", "write_memory_report", ""),
    ("TensorBoard writer (import + create, at the first log)", "scaling/telemetry.py",
     "_writer", ""),
    ("checkpoint (after the step)", "scaling/checkpoint.py", "save", ""),
]


def base_config() -> dict:
    return yaml.safe_load((ROOT / "configs" / "base-cpu.yaml").read_text())


def run_config(batch: int) -> dict:
    """configs/base-cpu.yaml cut to one step on a small data set."""
    config = base_config()
    config["data"]["images"] = 2 * batch
    config["optim"]["images_seen"] = batch
    config["optim"]["global_batch"] = batch
    config["logging"].update(every_steps=1, tensorboard=True, progress=False)
    return config


def model_spec(config: dict) -> dict:
    from contract.config import RunConfig, from_dict
    from scaling.recipe import model_kwargs

    rc = from_dict(RunConfig, config)
    return {"arch": rc.model.arch, "kwargs": model_kwargs(rc), "classes": 100,
            "batch": rc.optim.global_batch, "size": rc.model.image_size}


def spawn_until(cmd: list[str], marker: Path, env: dict, cpu: list[float]) -> float:
    """Seconds from spawning `cmd` until `marker` was last written (the process has ended);
    appends the process's whole CPU time (user + system) to `cpu`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not marker.exists():
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return marker.stat().st_mtime - start


def measure(args, tmp: Path) -> tuple[dict[str, list[float]], dict[str, list[float]], dict]:
    """Per case: seconds to the first step, and the process's CPU seconds (both per round,
    the warm-up round left out)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    config = run_config(args.batch)
    spec = json.dumps(model_spec(config))
    count = {"n": 0}
    cpu: dict[str, list[float]] = {"bare": [], "import only": [], "scaling train": []}

    def fresh() -> Path:
        count["n"] += 1
        return tmp / f"{count['n']:04d}"

    def bare():
        marker = fresh().with_suffix(".done")
        return spawn_until([sys.executable, "-c", BARE, "step", str(marker), spec], marker, env,
                           cpu["bare"])

    def import_only():
        marker = fresh().with_suffix(".done")
        return spawn_until([sys.executable, "-c", BARE, "import", str(marker)], marker, env,
                           cpu["import only"])

    def train():
        run = fresh()
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        return spawn_until([sys.executable, "-m", "scaling.cli", "train", "--config",
                            str(run / "config.yaml")], run / "metrics.jsonl", env,
                           cpu["scaling train"])

    cases = {"bare": bare, "import only": import_only, "scaling train": train}
    samples = ratio.interleave(cases, args.rounds, warmup=1)
    return samples, {k: v[1:] for k, v in cpu.items()}, config


def breakdown(config: dict, tmp: Path) -> list[tuple[str, float]]:
    """CPU seconds of each start-up piece of one in-process `scaling train` (cProfile)."""
    run = tmp / "profiled"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    code = (
        "import cProfile, sys, time\n"
        "p = cProfile.Profile(time.process_time)\n"
        "p.enable()\n"
        "from scaling.cli import main\n"
        f"main(['train', '--config', {str(run / 'config.yaml')!r}])\n"
        "p.disable()\n"
        f"p.dump_stats({str(tmp / 'train.prof')!r})\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    import pstats

    # typeshed leaves out Stats.stats, the (file, line, name) -> (cc, nc, tt, ct, callers) map
    stats = pstats.Stats(str(tmp / "train.prof")).stats  # type: ignore[attr-defined]

    def cum(suffix: str, name: str) -> float:
        return sum(v[3] for k, v in stats.items() if k[0].endswith(suffix) and k[2] == name)

    total = cum("scaling/cli.py", "main")
    rows = [("total (process, in-process profile)", total)]
    for label, suffix, name, how in PIECES:
        value = cum(suffix, name)
        if how == "minus":  # the CLI's own share: main less what it calls into
            value = total - cum("scaling/cli.py", "_execute")
        if value > 0:
            rows.append((label, value))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--breakdown", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as name:
        tmp = Path(name)
        samples, cpu, config = measure(args, tmp)
        rows = ratio.ratios(samples, "bare")
        cpu_rows = ratio.ratios(cpu, "bare")
        extra = {case: statistics.median(v - b for v, b in zip(values, samples["bare"]))
                 for case, values in samples.items() if case != "bare"}
        print(ratio.table(f"time to the first step, {args.rounds} interleaved rounds "
                          f"(ratio: time / the bare process's; lower is better)", rows,
                          unit="s"))
        for case, seconds in extra.items():
            print(f"  {case}: {seconds:+.2f} s against bare (median of per-round differences)")
        print()
        print(ratio.table("CPU seconds of the whole process (user + system; steadier than "
                          "wall time on a loaded host; `scaling train` also checkpoints and "
                          "exports after its step)", cpu_rows, unit="cpu s"))
        pieces = breakdown(config, tmp) if args.breakdown else []
    if pieces:
        print("\nwhere `scaling train`'s start-up goes (CPU seconds, cProfile, one run):")
        for label, seconds in pieces:
            print(f"  {label:<56s} {seconds:6.2f}")
    path = ratio.write("startup", {"config": vars(args), "startup": rows, "cpu": cpu_rows,
                                   "extra_s": extra, "samples_s": samples,
                                   "samples_cpu_s": cpu, "breakdown_cpu_s": dict(pieces)})
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
