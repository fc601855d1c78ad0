"""Telemetry: metrics.jsonl (+ TensorBoard) and MFU against the device's peak FLOP/s.

MFU = 3 x forward FLOPs per image (flop_counter; a multiply-add counts 2) x images/s /
peak FLOP/s. Peaks of known GPUs come from a table (dense, no sparsity); on a CPU the
peak is a measured fp32 matmul, so CPU MFU reads "fraction of what this box's BLAS does".
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Optional

import torch

# Dense peak FLOP/s by GPU name fragment: (bf16/fp16 tensor core, tf32, fp32 CUDA cores).
GPU_PEAKS = {
    "H200": (989.4e12, 494.7e12, 66.9e12),
    "H100": (989.4e12, 494.7e12, 66.9e12),
    "A100": (312e12, 156e12, 19.5e12),
    "L40S": (362e12, 183e12, 91.6e12),
    "A10": (125e12, 62.5e12, 31.2e12),
    "V100": (125e12, 15.7e12, 15.7e12),
}


@functools.lru_cache(maxsize=None)
def measured_cpu_peak(threads: int) -> float:
    """fp32 matmul FLOP/s on this CPU with `threads` threads (best of a few 512^3 runs)."""
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


def peak_flops(device: torch.device, precision: str) -> float:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (half, tf32, fp32) in GPU_PEAKS.items():
            if key in name:
                if precision in ("bf16", "fp16"):
                    return half
                return tf32 if torch.backends.cuda.matmul.allow_tf32 else fp32
        return float("nan")  # unknown GPU: MFU is reported as NaN rather than guessed
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
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(run_dir / "tb"))
            except ImportError:  # tensorboard missing: metrics.jsonl is the contract
                self.tb = None

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint (they will be logged again)."""
        if not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut by a kill
        self.path.write_text("".join(f"{line}\n" for line in keep))

    def log(self, record: dict) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"train/{key}", value, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def provenance(start: str, end: Optional[str] = None) -> dict:
    import os
    import platform
    import socket
    import subprocess

    import numpy
    import torchvision

    from scaling.runfiles import slurm_job_id

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
