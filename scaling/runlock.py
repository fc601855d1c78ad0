"""One process at a time per run: `<run>/run.lock`, taken by `scaling train` and
`scaling transfer` (rank 0), whatever started them (local executor, Slurm task, by hand).

The lock file is created with O_EXCL and holds {pid, host, start, since}; a thread touches
it every HEARTBEAT_S while the phase runs. A lock is stale - and taken over - when its
holder is on this host and that process is gone (pid dead, or reused by a process that
started at another time), or when it is on another host and has not been touched for
STALE_AFTER_S (a node that died cannot remove its lock). A live holder is never
overridden: the second process stops with a one-line error and touches nothing. Stdlib
only (slurm/ reads locks too).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Optional, Union

from contract.errors import RunError

LOCK = "run.lock"
HEARTBEAT_S = 15.0
STALE_AFTER_S = 90.0


class RunLocked(RunError):
    """Another live process holds the run; the refused one changes nothing."""

    exit_code = 75  # EX_TEMPFAIL: try again later


def _proc_start(pid: int) -> Optional[str]:
    """Start time of `pid` in clock ticks since boot (None when it does not exist)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "?"
        return "?"
    return stat.rsplit(")", 1)[1].split()[19]


def read_holder(run_dir: Union[str, Path]) -> Optional[dict]:
    """The lock's holder with its age (`age_s`); None when there is no lock. A lock that is
    not a JSON object (torn, or written by something else) has no holder: pid None, so
    `acquire` takes it over once it is a few seconds old."""
    path = Path(run_dir) / LOCK
    try:
        holder = json.loads(path.read_text())
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return None
        return {"pid": None, "host": None, "age_s": age}
    if not isinstance(holder, dict):
        return {"pid": None, "host": None, "age_s": age}
    return {**holder, "age_s": age}


def stale_reason(holder: dict) -> Optional[str]:
    """Why the holder no longer holds the run (None while it may still be running)."""
    pid, host = holder.get("pid"), holder.get("host")
    if host == socket.gethostname() and isinstance(pid, int):
        start = _proc_start(pid)
        if start is None:
            return f"pid {pid} on {host} is gone"
        if start != "?" and holder.get("start") not in (None, start):
            return f"pid {pid} on {host} is another process now"
        return None
    if holder.get("age_s", 0.0) > STALE_AFTER_S:
        return f"not touched for {holder['age_s']:.0f} s (holder {pid} on {host})"
    return None


class RunLock:
    """`with RunLock(run_dir, "train"):` - raises RunLocked while a live process holds it."""

    def __init__(self, run_dir: Union[str, Path], phase: str) -> None:
        self.path = Path(run_dir) / LOCK
        self.phase = phase
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._mine = ""

    def acquire(self) -> RunLock:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _proc_start(os.getpid()),
              "phase": self.phase, "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self._mine = json.dumps(me) + "\n"
        # a holder on another node may be a node that died (its lock goes stale after
        # STALE_AFTER_S): wait that long for it before refusing
        wait_until = time.time() + STALE_AFTER_S + HEARTBEAT_S
        while True:
            if self._create():
                self._thread = threading.Thread(target=self._beat, daemon=True,
                                                name="run-lock-heartbeat")
                self._thread.start()
                return self
            holder = read_holder(self.path.parent)
            if holder is None:
                continue  # released between our attempt and the read
            if holder.get("pid") is None and holder.get("age_s", 0.0) < 5:
                time.sleep(0.1)  # being written right now
                continue
            why = stale_reason(holder) if holder.get("pid") is not None else "unreadable"
            if why is None and holder.get("host") != me["host"] and time.time() < wait_until:
                time.sleep(min(HEARTBEAT_S, 5.0))  # a dead node's lock goes stale: wait
                continue
            if why is None:
                raise RunLocked(
                    f"{self.path.parent.name}: already being run by pid {holder.get('pid')} on "
                    f"{holder.get('host')} ({holder.get('phase', '?')} since "
                    f"{holder.get('since', '?')}); not started again. Wait for it; if that "
                    f"process is gone for good, remove {self.path}")
            self._take_over(holder)

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(self._mine)
        return True

    def _take_over(self, seen: dict) -> None:
        """Remove a stale lock, once: under a guard so two takers cannot both remove it
        (and one of them the other's fresh lock)."""
        guard = self.path.with_name(LOCK + ".guard")
        with open(guard, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                now = read_holder(self.path.parent)
                if now is not None and now.get("pid") == seen.get("pid") \
                        and now.get("host") == seen.get("host"):
                    self.path.unlink(missing_ok=True)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            if self.path.read_text() == self._mine:
                self.path.unlink()
        except OSError:
            pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
