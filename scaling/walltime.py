"""How long a sweep takes on this host, from a microbenchmark of the runs' own shapes.

FLOPs over an assumed MFU misjudge a CPU several-fold (bf16 emulated where the CPU lacks
it, batch norm and ReLU memory-bound at 16 px), so for runs that train on this host's CPU
`scaling sweep` times what a run does instead: a few training steps and an evaluation
forward of each distinct model shape and precision, the synthetic world's render rate, a
linear probe of the transfer's size, and the start-up of a phase process. Each figure is
measured once and cached per host and torch version (`$SCALING_CACHE/walltime.json`), so a
sweep pays a few seconds per new shape and nothing the second time.

A run's time is composed from them (`RunTime`): two phase start-ups, rendering its images
and target splits, images_seen / training rate, feature extraction (the random-trunk
floor once per floor key, as scaling/transfer.py caches it), the probes, and fine-tuning.
The sweep's wall time then schedules the runs costliest first onto `parallel` slots, as
`scaling run --local` does (slurm/eta.py). CUDA runs are estimated from the GPU table
(peak FLOP/s x an assumed MFU: scaling/memory.py), and the manifest says which basis each
estimate has.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from contract.atomic import atomic_write_text
from contract.config import RunConfig
from scaling.telemetry import QUIET_LOAD

CACHE_VERSION = 1
WARMUP_STEPS, TIMED_STEPS = 1, 3
EVAL_BATCH = 500  # scaling/transfer.py extract_features
STEP_FLOPS_BUDGET = 1e10
"""At most this many FLOPs per timed step (a tenth of a second or so on one core): a larger batch is
timed at a smaller one (the rate per image is what counts); a model whose single image
costs more is estimated from FLOPs instead (a ResNeXt-101 at 224 px on a login node)."""
CPU_FLOP_EFFICIENCY = 0.25
"""The share of the matmul peak assumed for such a model (scaling/memory.py ASSUMED_MFU)."""


def cache_path() -> Path:
    root = os.environ.get("SCALING_CACHE") or Path.home() / ".cache" / "wsl-scaling"
    return Path(root) / "walltime.json"


def host_key() -> str:
    """Which host the figures are of: CPU model, cores, bf16 support, torch version."""
    import torch

    from scaling.precision import cpu_bf16
    from scaling.telemetry import cpu_model

    bf16 = "bf16" if cpu_bf16().native else "no-bf16"
    return (f"{cpu_model()}|{os.cpu_count()} cpus|{bf16}|torch {torch.__version__}"
            f"|v{CACHE_VERSION}")


def host_summary() -> str:
    """'AMD EPYC, 2 cpus, avx512_bf16' (what the estimate's basis names)."""
    from scaling.precision import cpu_bf16

    cpu, cores, *_ = host_key().split("|")
    return f"{cpu}, {cores}, {cpu_bf16().why}"


class Cache:
    """This host's measured figures: read once, measured when missing, written back.

    A figure measured while other work loaded the host (more than telemetry.QUIET_LOAD
    per core, as for the CPU peak) is used for this sweep but not kept, so a busy moment
    does not become the host's speed; `busy` says the estimate may be long."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = path or cache_path()
        self.host = host_key()
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}
        self.all = data if isinstance(data, dict) else {}
        mine = self.all.get(self.host)
        self.mine: dict = mine if isinstance(mine, dict) else {}
        self.all[self.host] = self.mine
        self.now: dict = {}
        self.busy = 0.0
        self.dirty = False

    def get(self, key: str, measure) -> Any:
        if key in self.mine:
            return self.mine[key]
        if key not in self.now:
            value = measure()
            other = other_load()
            if other > QUIET_LOAD:
                self.busy = max(self.busy, other)
                self.now[key] = value
            else:
                self.mine[key] = value
                self.dirty = True
                return value
        return self.now[key]

    def save(self) -> None:
        if self.dirty:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(self.path, json.dumps(self.all, indent=1) + "\n")
            except OSError:  # a read-only home: the estimate is still printed
                pass
            self.dirty = False


def other_load() -> float:
    """Load per core from other work (the 1-minute load average less this process)."""
    return max(0.0, os.getloadavg()[0] - 1.0) / (os.cpu_count() or 1)


# ------------------------------------------------------------------------ measurements

@dataclass(frozen=True)
class Shape:
    """What sets a training step's speed on a CPU."""

    arch: str
    kwargs: tuple
    image_size: int
    num_classes: int
    precision: str
    batch: int
    threads: int
    channels_last: bool

    def key(self) -> str:
        return "step " + json.dumps(asdict(self), sort_keys=True)


def _threads(n: int):
    import contextlib

    import torch

    @contextlib.contextmanager
    def scope():
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)
    return scope()


def measure_step(shape: Shape, flops_per_image: int) -> dict:
    """Training and evaluation images/s of one shape: the engine's recipe (SGD, autocast
    over fp32 weights, soft-target loss) on random inputs, median of timed steps; at a
    smaller batch when a step would exceed STEP_FLOPS_BUDGET, from FLOPs when even one
    image would."""
    import dataclasses
    import statistics

    per_image = 3.0 * max(1, flops_per_image)
    if per_image > STEP_FLOPS_BUDGET:
        from scaling.telemetry import measured_cpu_peak

        peak = measured_cpu_peak(shape.threads)
        if not peak == peak:  # NaN: no trustworthy peak; the plan-level figure
            from scaling.memory import CPU_FLOPS_PER_CORE

            peak = CPU_FLOPS_PER_CORE * shape.threads
        ips = peak * CPU_FLOP_EFFICIENCY / per_image
        return {"train_ips": ips, "eval_ips": 3 * ips, "basis": "flops"}
    batch = int(min(shape.batch, max(1, STEP_FLOPS_BUDGET // per_image)))
    shape = dataclasses.replace(shape, batch=batch)
    eval_batch = int(min(EVAL_BATCH, max(1, 3 * STEP_FLOPS_BUDGET // per_image)))

    import torch

    from models import create_model
    from scaling import recipe

    with _threads(shape.threads):
        torch.manual_seed(0)
        model = create_model(shape.arch, num_classes=shape.num_classes, **dict(shape.kwargs))
        fmt = torch.channels_last if shape.channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt)
        optim = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        x = torch.randn(shape.batch, 3, shape.image_size, shape.image_size)
        x = x.contiguous(memory_format=fmt)
        y = torch.softmax(torch.randn(shape.batch, shape.num_classes), 1)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(shape.precision)

        def step() -> float:
            start = time.perf_counter()
            optim.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                logits = model(x)
            recipe.loss_fn(logits, y, "soft").backward()
            optim.step()
            return time.perf_counter() - start

        for _ in range(WARMUP_STEPS):
            step()
        train_s = statistics.median(step() for _ in range(TIMED_STEPS))
        model.eval()
        xe = torch.randn(eval_batch, 3, shape.image_size, shape.image_size)
        xe = xe.contiguous(memory_format=fmt)
        with torch.no_grad():
            model(xe)
            start = time.perf_counter()
            model(xe)
            eval_s = time.perf_counter() - start
    return {"train_ips": shape.batch / train_s, "eval_ips": eval_batch / eval_s,
            "basis": "timed"}


def measure_startup() -> float:
    """Seconds a phase process spends before its first step's work: the interpreter and
    the imports of a `scaling train` / `scaling transfer` process."""
    code = "import scaling.engine, scaling.transfer, scaling.cli, data, models"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - start


def measure_render(image_size: int) -> dict:
    """The default synthetic world at this size: seconds to build it, images/s to render."""
    import numpy as np

    from contract.config import DataConfig
    from data.world import SyntheticWorld

    start = time.perf_counter()
    world = SyntheticWorld(DataConfig().world, 0, image_size)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    world.render_pretrain(np.arange(1024, dtype=np.int64))
    return {"build_s": build_s, "render_ips": 1024 / (time.perf_counter() - start)}


PROBE_ITERS = 1700
"""L-BFGS iterations of one linear probe (scaling/probe.py: four L2 fits and the refit):
2,028 loss evaluations were counted on the demo's width-16 features (3000 x 256, 100
classes), about 1.2 per iteration. Random features converge in a tenth of that, so the
probe is timed per iteration and not run to convergence."""


def measure_probe(n_train: int, n_test: int, dim: int, classes: int) -> float:
    """Seconds of one linear probe of this size: PROBE_ITERS x the time of one iteration
    of its fit (timed over 20 after a warm-up; n_test is scored once: negligible)."""
    import torch

    from scaling.probe import _fit

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n_train, dim, generator=gen)
    y = torch.randint(0, classes, (n_train,), generator=gen)
    with _threads(1):
        _fit(x, y, classes, 1e-5, iters=2)
        start = time.perf_counter()
        _fit(x, y, classes, 1e-5, iters=20)
        per_iter = (time.perf_counter() - start) / 20
    return per_iter * PROBE_ITERS


# ------------------------------------------------------------------------ composition

@dataclass
class RunTime:
    """One run's estimated seconds on this host, by phase."""

    train_s: float
    transfer_s: float
    basis: str

    @property
    def total_s(self) -> float:
        return self.train_s + self.transfer_s


def _shape(config: RunConfig, num_classes: int, batch: int, prec: str) -> Shape:
    from scaling.recipe import model_kwargs

    world = config.resources.world_size
    return Shape(config.model.arch, tuple(sorted(model_kwargs(config).items())),
                 config.model.image_size, num_classes, prec, max(1, batch // world),
                 config.resources.cpus_per_rank, config.model.channels_last)


def _target_classes(config: RunConfig, target) -> int:
    try:
        from data.targets import num_classes

        return int(num_classes(config.data, config.model.image_size, target))
    except Exception:  # a user target the sweep could not open: the probe's size is a guess
        return 100


class Estimator:
    """Per-run estimates for one sweep on this host (measurements shared and cached)."""

    def __init__(self, cache: Optional[Cache] = None) -> None:
        self.cache = cache or Cache()
        self.floors: set = set()
        self.classes: dict = {}

    def _step(self, shape: Shape, flops_per_image: int) -> dict:
        return self.cache.get(shape.key(), lambda: measure_step(shape, flops_per_image))

    def _classes(self, config: RunConfig, spec) -> int:
        key = (repr(config.data.world), config.data.seed, config.data.source,
               config.model.image_size, repr(spec))
        if key not in self.classes:
            self.classes[key] = _target_classes(config, spec)
        return self.classes[key]

    def run(self, config: RunConfig, num_classes: int, flops_per_image: int,
            feature_dim: int) -> RunTime:
        """One run's estimate: `flops_per_image` and `feature_dim` from the sweep's meta
        profile of its model."""
        from contract.target_spec import parse_targets
        from scaling.precision import resolve

        if config.resources.device == "cuda":
            return self._gpu(config, num_classes)
        prec, _ = resolve(config.precision, "cpu", config.shard.strategy, config.shard.offload)
        size, tc = config.model.image_size, config.transfer
        c = self.cache
        start = c.get("startup", measure_startup)
        world = c.get(f"render {size}", lambda: measure_render(size))
        step = self._step(_shape(config, num_classes, config.optim.global_batch, prec),
                          flops_per_image)
        synthetic = config.data.source == "synthetic"
        render = (lambda n: n / world["render_ips"]) if synthetic else (lambda n: 0.0)
        train = (start + (world["build_s"] if synthetic else 0.0) + render(config.data.images)
                 + config.optim.images_seen / step["train_ips"])

        transfer = start + (world["build_s"] if synthetic else 0.0)
        for spec in parse_targets(tc.targets):
            n = tc.train_images + tc.test_images
            classes = self._classes(config, spec)
            transfer += render(n)
            probes = [p for p in tc.protocols if p in ("linear", "fewshot")]
            if probes:
                trunks = 1
                floor = (config.model.arch, _shape(config, 1, 1, "fp32").kwargs, config.seed,
                         config.data.seed, spec.name, tc.train_images, tc.test_images)
                if tc.floor and "linear" in probes and floor not in self.floors:
                    self.floors.add(floor)
                    trunks = 2
                transfer += trunks * n / step["eval_ips"]
                size_key = (tc.train_images, tc.test_images, feature_dim, classes)
                probe = c.get("probe {} {} {} {}".format(*size_key),
                              functools.partial(measure_probe, *size_key))
                transfer += probe * (trunks if "linear" in probes else 0)
                if "fewshot" in probes:
                    transfer += 0.1 * len(tc.fewshot_shots) * tc.fewshot_draws
            if "finetune" in tc.protocols:
                ft = tc.finetune
                rate = self._step(_shape(config, classes, ft.global_batch, prec),
                                  flops_per_image)
                transfer += ft.images_seen / rate["train_ips"] + tc.test_images / rate["eval_ips"]
        how = "measured" if step["basis"] == "timed" else "FLOPs at the measured peak"
        return RunTime(train, transfer, f"{how} on this host ({host_summary()}), {prec}")

    def busy_note(self) -> str:
        """What the basis adds when a figure was measured on a busy host ('' if none)."""
        if not self.cache.busy:
            return ""
        return (f"; measured while the host was busy ({self.cache.busy:.1f} other load per "
                "core): not cached, and the estimate may be long")

    def _gpu(self, config: RunConfig, num_classes: int) -> RunTime:
        from scaling import memory

        profile = memory.profile_config(config, num_classes)
        hours = memory.device_hours(profile, config, config.resources.world_size)
        wall = hours * 3600 / config.resources.world_size
        gpu = config.resources.gpu
        mfu = memory.ASSUMED_MFU["cuda"]
        return RunTime(wall, 0.0, f"GPU table ({gpu}, assumed MFU {mfu:.2f}; transfer "
                                  "not included)")
