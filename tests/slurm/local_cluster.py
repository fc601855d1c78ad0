"""A real one-node Slurm 22.05 cluster for the tests (Debian's slurm-wlm + munge).

`ensure_cluster(base)` reuses a running cluster (sinfo answers with an idle node), or
installs the packages when missing (root + apt-get), writes a one-node slurm.conf under
`base` and to /etc/slurm/slurm.conf (clients started from subprocesses find it there), and
starts munged (only when `munge -n | unmunge` fails), slurmctld and slurmd. `stop()` stops
what it started, by pid, and restores a slurm.conf it replaced. The settings follow the
measured recipe in shared/notes/slurm-local.md (fast scheduling, short requeue hold).

Manual use, from the repository root: `python -m tests.slurm.local_cluster up BASE` /
`down BASE`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tests.slurm.slurm_conf import Node
from tests.slurm.slurm_conf import slurm_conf as shared_slurm_conf

ETC_CONF = Path("/etc/slurm/slurm.conf")
PACKAGES = ["slurm-wlm", "munge"]


class Unavailable(Exception):
    """Slurm cannot be installed or started here (the message says why)."""


def _run(argv, timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def _sinfo_states() -> Optional[list[str]]:
    if shutil.which("sinfo") is None:
        return None
    try:
        proc = _run(["sinfo", "-h", "-o", "%T"], timeout=15)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.split() if proc.returncode == 0 else None


def _usable(states: Optional[list[str]]) -> bool:
    return bool(states) and any(s.rstrip("*~#") in ("idle", "mixed", "allocated")
                                for s in states)


def _bin(name: str) -> str:
    """Daemons live in /usr/sbin, which a non-login PATH may lack."""
    return shutil.which(name) or next((f"{d}/{name}" for d in ("/usr/sbin", "/usr/bin")
                                       if Path(f"{d}/{name}").exists()), name)


def install() -> None:
    missing = [b for b in ("slurmctld", "slurmd", "sbatch", "munged")
               if not Path(_bin(b)).is_absolute()]
    if not missing:
        return
    if os.geteuid() != 0:
        raise Unavailable(f"Slurm is not installed ({', '.join(missing)} missing) and "
                          "installing it needs root")
    if shutil.which("apt-get") is None:
        raise Unavailable("Slurm is not installed and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]):
        proc = _run(argv, timeout=600, env=env)
        if proc.returncode != 0:
            tail = " ".join((proc.stderr or proc.stdout).split())[-300:]
            raise Unavailable(f"{' '.join(argv)} failed: {tail}")


def slurm_conf(base: Path) -> str:
    cpus = os.cpu_count() or 1
    mem_mb = 1024
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_mb = max(1024, int(line.split()[1]) // 1024 - 1024)
    except OSError:
        pass
    host = socket.gethostname().split(".")[0]
    return shared_slurm_conf(
        base, title="One-node Slurm for the wsl-scaling tests (tests/slurm/local_cluster.py)",
        cluster="wslci", ctl_host=host, ctl_addr="127.0.0.1",
        nodes=[Node(host, "127.0.0.1", cpus, mem_mb)], partition="debug")


@dataclass
class Cluster:
    base: Path
    reused: bool = False
    started_munged: bool = False
    pids: dict = field(default_factory=dict)
    conf_backup: Optional[str] = None
    wrote_conf: bool = False
    startup_s: float = 0.0

    def stop(self) -> None:
        if self.reused:
            return
        for name in ("slurmd", "slurmctld"):
            pid = self.pids.get(name)
            if pid:
                _stop_pid(pid)
        if self.started_munged:
            pid = _read_pid(Path("/run/munge/munged.pid"))
            if pid:
                _stop_pid(pid)
        if self.wrote_conf:
            if self.conf_backup is not None:
                ETC_CONF.write_text(self.conf_backup)
            else:
                ETC_CONF.unlink(missing_ok=True)


def _read_pid(path: Path) -> Optional[int]:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop_pid(pid: int, wait_s: float = 10.0) -> None:
    """TERM, wait (capped: PID 1 here may reap late, and kill -0 succeeds on a zombie), KILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.split(")")[-1].split()[0] == "Z":
                return
        except (ProcessLookupError, OSError):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _munge_ok() -> bool:
    try:
        enc = _run(["munge", "-n"], timeout=10)
        if enc.returncode != 0:
            return False
        return _run(["unmunge"], timeout=10, input=enc.stdout).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def ensure_cluster(base: Path, idle_timeout_s: float = 30.0) -> Cluster:
    """A usable cluster: the running one, or one started here under `base`."""
    start = time.perf_counter()
    if _usable(_sinfo_states()):
        return Cluster(base=base, reused=True)
    install()
    if os.geteuid() != 0:
        raise Unavailable("starting slurmctld/slurmd here needs root")
    cluster = Cluster(base=base)
    try:
        for sub in ("state/ctld", "state/d", "run", "log"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        conf = base / "slurm.conf"
        conf.write_text(slurm_conf(base))
        ETC_CONF.parent.mkdir(parents=True, exist_ok=True)
        cluster.conf_backup = ETC_CONF.read_text() if ETC_CONF.is_file() else None
        shutil.copyfile(conf, ETC_CONF)
        cluster.wrote_conf = True
        if not _munge_ok():
            subprocess.run(["install", "-d", "-o", "munge", "-g", "munge", "-m", "0755",
                            "/run/munge"], check=True)
            proc = _run([_bin("runuser"), "-u", "munge", "--", _bin("munged")])
            if proc.returncode != 0 or not _munge_ok():
                raise Unavailable(f"munged did not start: {' '.join(proc.stderr.split())}")
            cluster.started_munged = True
        for name, argv in (("slurmctld", [_bin("slurmctld"), "-c", "-f", str(conf)]),
                           ("slurmd", [_bin("slurmd"), "-f", str(conf)])):
            proc = _run(argv)
            if proc.returncode != 0:
                raise Unavailable(f"{name} did not start: {' '.join(proc.stderr.split())}; "
                                  f"see {base}/log/{name}.log")
            pidfile = base / "run" / f"{name}.pid"
            for _ in range(100):
                if _read_pid(pidfile):
                    break
                time.sleep(0.05)
            cluster.pids[name] = _read_pid(pidfile)
        deadline = time.monotonic() + idle_timeout_s
        while not _usable(_sinfo_states()):
            if time.monotonic() > deadline:
                log = (base / "log" / "slurmd.log")
                tail = log.read_text()[-500:] if log.is_file() else ""
                raise Unavailable(f"the node never became idle: sinfo says {_sinfo_states()}; "
                                  f"slurmd.log ends: {tail}")
            time.sleep(0.1)
    except BaseException:
        cluster.stop()
        raise
    cluster.startup_s = time.perf_counter() - start
    (base / "cluster.json").write_text(json.dumps({
        "pids": cluster.pids, "started_munged": cluster.started_munged,
        "conf_backup": cluster.conf_backup}))
    return cluster


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print("usage: python -m tests.slurm.local_cluster up|down BASE", file=sys.stderr)
        return 2
    base = Path(argv[1]).resolve()
    if argv[0] == "up":
        c = ensure_cluster(base)
        print(f"cluster {'reused' if c.reused else 'started'} in {c.startup_s:.1f} s")
        return 0
    info = json.loads((base / "cluster.json").read_text())
    Cluster(base=base, pids=info["pids"], started_munged=info["started_munged"],
            conf_backup=info["conf_backup"], wrote_conf=True).stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
