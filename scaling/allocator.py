"""Keep glibc's heap from returning activation buffers to the OS between steps.

With glibc's defaults every large activation buffer (above the dynamic mmap threshold) is
mmap'd on allocation and unmapped on free, so each training step faults tens of thousands
of fresh pages back in: on the 2-core CI machine 26-35% of CPU time went to the kernel and
identical steps ran 0.76x-1.12x apart. Serving large blocks from the heap and never
trimming it removes the faults. The cost: the process keeps its peak heap (plus `top_pad`)
resident until it exits instead of giving freed memory back, which for a training process
(whose peak recurs every step) is memory it needs anyway.

Applied in-process with `mallopt`, so it holds for `scaling train` started any way (Slurm
task, local executor, a notebook); `SCALING_MALLOC=system` turns it off. Other allocators
(jemalloc, tcmalloc via LD_PRELOAD) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

TOP_PAD_BYTES = 512 << 20
"""Heap growth step: fewer, larger brk calls while the first steps find the peak."""
TRIM_THRESHOLD_BYTES = 2**31 - 1
"""Trim only when 2 GiB lie free at the heap's top (mallopt takes a C int)."""

_applied: dict | None = None


def pin_heap() -> dict:
    """Apply the heap settings once per process; returns what was done (for provenance)."""
    global _applied
    if _applied is not None:
        return _applied
    if os.environ.get("SCALING_MALLOC", "").lower() == "system":
        _applied = {"allocator": "system", "reason": "SCALING_MALLOC=system"}
        return _applied
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _applied = {"allocator": "system", "reason": "not glibc"}
        return _applied
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok = all(libc.mallopt(param, value) == 1 for param, value in (
        (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES), (M_TOP_PAD, TOP_PAD_BYTES)))
    _applied = {"allocator": "glibc-pinned" if ok else "system",
                "mmap_max": 0, "trim_threshold": TRIM_THRESHOLD_BYTES, "top_pad": TOP_PAD_BYTES}
    if not ok:
        _applied["reason"] = "mallopt refused"
    return _applied
