"""Telemetry: metrics.jsonl (+ TensorBoard) and MFU against the device's peak FLOP/s.

MFU = 3 x forward FLOPs per image (flop_counter; a multiply-add counts 2) x images/s /
peak FLOP/s. Peaks of known GPUs come from a table (dense, no sparsity); on a CPU the
peak is a measured fp32 matmul, so CPU MFU reads "fraction of what this box's BLAS does".
"""

from __future__ import annotations

import functools
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import torch

from contract.atomic import atomic_write_text
from contract.runfolder import parse_metrics_line
from scaling import gpus

QUIET_LOAD = 0.25
"""A peak is trusted only when measured with at most this much other load per core (the
1-minute load average, less our own threads): a busy host measures a fraction of its BLAS
peak, which inflates every MFU computed against it (the demo once showed 0.05 to 0.6 for
two models of one family)."""


def _matmul_flops(threads: int) -> float:
    """fp32 matmul FLOP/s with `threads` threads (best of a few 512^3 runs)."""
    n = 512
    a, b = torch.randn(n, n), torch.randn(n, n)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(4):
                a @ b
            best = min(best, (time.perf_counter() - start) / 4)
    finally:
        torch.set_num_threads(before)
    return 2 * n ** 3 / best


def peak_cache_path() -> Path:
    """Where measured CPU peaks are kept: $SCALING_CACHE or ~/.cache/wsl-scaling."""
    root = os.environ.get("SCALING_CACHE") or Path.home() / ".cache" / "wsl-scaling"
    return Path(root) / "cpu_peak.json"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform says: what host-keyed
    caches (the peak here, the wall-time figures in scaling/walltime.py) are keyed on."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _host_key(threads: int) -> str:
    import platform

    return (f"{platform.node()}|{cpu_model()}|{os.cpu_count()} cpus|{threads} threads|"
            f"torch {torch.__version__}")


def measure_cpu_peak(threads: int, record: bool = True) -> dict:
    """Measure the fp32 matmul peak now; a record with its provenance (load, time) and
    whether it can be trusted. Trusted records are cached for later runs on this host."""
    load_before = os.getloadavg()[0]
    flops = _matmul_flops(threads)
    load = max(load_before, os.getloadavg()[0])
    other = max(0.0, load - threads) / (os.cpu_count() or 1)
    entry = {"flops": flops, "threads": threads, "load_1min": round(load, 2),
             "other_load_per_core": round(other, 3), "trusted": other <= QUIET_LOAD,
             "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "host": _host_key(threads)}
    if record and entry["trusted"]:
        path = peak_cache_path()
        cache = _read_cache(path)
        cache[entry["host"]] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1) + "\n")
        os.replace(tmp, path)
    return entry


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@functools.cache
def cpu_peak(threads: int) -> dict:
    """The host's peak for `threads` threads: the cached quiet measurement when there is
    one (`make bench` records it), else a measurement now, trusted only if the host is
    quiet. Never raises: a peak that cannot be trusted makes MFU NaN, not a guess."""
    cached = _read_cache(peak_cache_path()).get(_host_key(threads))
    if cached and cached.get("trusted") and cached.get("flops", 0) > 0:
        return {**cached, "source": "cache"}
    load = os.getloadavg()[0]
    other = max(0.0, load - threads) / (os.cpu_count() or 1)
    if other > QUIET_LOAD:  # a measurement now could not be trusted: do not spend on it
        return {"flops": float("nan"), "threads": threads, "load_1min": round(load, 2),
                "other_load_per_core": round(other, 3), "trusted": False,
                "source": "not measured (host busy)"}
    return {**measure_cpu_peak(threads), "source": "measured now"}


def measured_cpu_peak(threads: int) -> float:
    """fp32 matmul FLOP/s of this CPU with `threads` threads; NaN when no trustworthy
    measurement exists (the host was busy and nothing was cached)."""
    entry = cpu_peak(threads)
    return entry["flops"] if entry["trusted"] else float("nan")


def peak_flops(device: torch.device, precision: str) -> float:
    """Peak FLOP/s of the device for MFU: the table for known GPUs, a trusted measurement
    on CPUs; NaN when unknown (MFU is then reported as NaN rather than guessed)."""
    if device.type == "cuda":
        gpu = gpus.by_device_name(torch.cuda.get_device_name(device))
        if gpu is None:
            return float("nan")
        if precision in ("bf16", "fp16"):
            return gpu.half
        return gpu.tf32 if torch.backends.cuda.matmul.allow_tf32 else gpu.fp32
    return measured_cpu_peak(torch.get_num_threads())


def max_mem_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


class MetricsLogger:
    """Appends one JSON object per logged step; mirrors scalars to TensorBoard (rank 0)."""

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.run_dir = run_dir
        self.tb: Any = None  # a SummaryWriter once made
        self._want_tb = tensorboard

    def _writer(self):
        """The TensorBoard writer, made at the first logged step rather than before the
        first step (importing tensorboard takes a few tenths of a second)."""
        if self._want_tb and self.tb is None:
            self._want_tb = False
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(self.run_dir / "tb"))
            except ImportError:  # tensorboard missing: metrics.jsonl is the contract
                self.tb = None
        return self.tb

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint (they will be logged again)."""
        if not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            record = parse_metrics_line(line)  # None: a line cut by a kill
            if record is not None and isinstance(record.get("step"), int) \
                    and record["step"] <= step:
                keep.append(line)
        atomic_write_text(self.path, "".join(f"{line}\n" for line in keep))

    def log(self, record: dict) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        tb = self._writer()
        if tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    tb.add_scalar(f"train/{key}", value, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def provenance(start: str, end: Optional[str] = None) -> dict:
    import os
    import platform
    import socket
    import subprocess

    import numpy
    import torchvision

    from contract.runfolder import slurm_job_id

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return {"git_sha": sha or "unknown", "host": socket.gethostname(),
            "slurm_job_id": slurm_job_id(), "start": start, "end": end,
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "torchvision": torchvision.__version__, "numpy": numpy.__version__},
            "pid": os.getpid()}
