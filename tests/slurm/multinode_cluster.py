"""A real two-node Slurm 22.05 cluster on one machine, for the multi-node tests.

Layout (the measured recipe in shared/notes/slurm-multinode.md), all on a private bridge
`<prefix>br` with addresses 10.<subnet>.0.0/24 and no route anywhere else:

    root netns   munged (its unix socket reaches every namespace), bridge 10.S.0.1,
                 the clients (sbatch, squeue, scaling submit) with SLURM_CONF=<base>/slurm.conf
    <prefix>-ctl   netns + UTS ns (hostname <prefix>ctl, 10.S.0.10): slurmctld -D
    <prefix>-n1    netns + UTS ns (hostname <prefix>1,   10.S.0.11): slurmd -D -N <prefix>1
    <prefix>-n2    netns + UTS ns (hostname <prefix>2,   10.S.0.12): slurmd -D -N <prefix>2

Each daemon also gets a private mount namespace where `<base>/hosts` (a copy of /etc/hosts
plus the three names) is bind-mounted over /etc/hosts, so every job resolves the node names
(MASTER_ADDR, gloo's own-hostname lookup) and nothing global is edited. Namespaces are
entered with `nsenter --net` + `unshare --uts --mount`, never `ip netns exec` (which
remounts /sys and hides the cgroup mounts slurmd needs). Spool, pid and log paths are per
node (`%n`). Ports 6917/6918 by default, so it can run beside the one-node cluster
(6817/6818) of local_cluster.py; it never writes /etc/slurm/slurm.conf: clients get
SLURM_CONF from `env()`, and jobs inherit it.

`down()` always leaves nothing: it TERMs (then KILLs) every process inside the cluster's
namespaces (daemons, slurmstepd, job ranks), deletes the namespaces and the bridge, stops
munged only if `up()` started it, and `leftovers()` says what, if anything, survived.
A crashed earlier run is cleaned up by the next `up()` (its record lives in /run).

Manual use, from the repository root: `python -m tests.slurm.multinode_cluster up BASE` /
`down BASE`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tests.slurm.local_cluster import Unavailable, _bin, _munge_ok, _read_pid, _stop_pid, install
from tests.slurm.slurm_conf import Node
from tests.slurm.slurm_conf import slurm_conf as shared_slurm_conf

SYSTEM_TOOLS = {"ip": "iproute2", "nsenter": "util-linux", "unshare": "util-linux",
                "mount": "mount", "hostname": "hostname"}  # tool -> Debian package


def install_tools() -> None:
    """The namespace tools, installed with apt-get when missing (as `make system-deps` does)."""
    missing = sorted({pkg for tool, pkg in SYSTEM_TOOLS.items()
                      if not Path(_bin(tool)).is_absolute()})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise Unavailable(f"missing packages {missing} and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
        _run(argv, timeout=600, env=env)


def _run(argv, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise Unavailable(f"{' '.join(map(str, argv))} failed: "
                          f"{' '.join((proc.stderr or proc.stdout).split())[-300:]}")
    return proc


def _alive(pid: int) -> bool:
    """Running and not a zombie (PID 1 here reaps orphans late; kill -0 succeeds on zombies)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _netns_inode(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _pids_in_netns(inodes: set) -> list[int]:
    """Live processes whose network namespace is one of `inodes` (even once unnamed)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes and _alive(int(entry)):
                    out.append(int(entry))
            except OSError:
                continue
    return out


def _hosts_digest() -> str:
    return hashlib.sha256(Path("/etc/hosts").read_bytes()).hexdigest()


@dataclass
class TwoNodeCluster:
    base: Path
    prefix: str = "wslmn"
    subnet: int = 77                 # 10.<subnet>.0.0/24
    ctld_port: int = 6917
    slurmd_port: int = 6918
    cpus_per_node: int = 4           # fiction: both nodes share this machine's cores
    slurmd_timeout_s: int = 60       # a node is declared DOWN after this long unreachable
    procs: dict = field(default_factory=dict)     # name -> Popen (daemons started here)
    inodes: dict = field(default_factory=dict)    # netns name -> inode (for leftovers)
    started_munged: bool = False
    hosts_digest: str = ""
    timings: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ names
    @property
    def nodes(self) -> list[str]:
        return [f"{self.prefix}1", f"{self.prefix}2"]

    @property
    def ctl_host(self) -> str:
        return f"{self.prefix}ctl"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    def addr(self, last: int) -> str:
        return f"10.{self.subnet}.0.{last}"

    def netns(self, host: str) -> str:
        return f"{self.prefix}-{host.removeprefix(self.prefix)}"

    def veth(self, host: str) -> str:
        return f"{self.prefix}v{host.removeprefix(self.prefix)}"  # root side, <= 15 chars

    @property
    def members(self) -> list[tuple[str, str]]:
        """(hostname, address) of the controller and the two nodes."""
        return [(self.ctl_host, self.addr(10)), (self.nodes[0], self.addr(11)),
                (self.nodes[1], self.addr(12))]

    @property
    def conf(self) -> Path:
        return self.base / "slurm.conf"

    @property
    def record(self) -> Path:
        return Path("/run") / f"wsl-scaling-{self.prefix}.json"

    def env(self, base: Optional[dict] = None) -> dict:
        """An environment whose Slurm clients talk to this cluster."""
        env = {k: v for k, v in (os.environ if base is None else base).items()
               if not k.startswith("SLURM_")}
        env["SLURM_CONF"] = str(self.conf)
        return env

    # ------------------------------------------------------------------ config
    def slurm_conf(self) -> str:
        return shared_slurm_conf(
            self.base, title="Two-node Slurm 22.05 on one machine, a netns per node "
            "(multinode_cluster.py)", cluster=self.prefix, ctl_host=self.ctl_host,
            ctl_addr=self.addr(10), partition=self.prefix,
            nodes=[Node(h, a, self.cpus_per_node, 4096) for h, a in self.members[1:]],
            ctld_port=self.ctld_port, slurmd_port=self.slurmd_port,
            slurmd_timeout_s=self.slurmd_timeout_s, per_node_files=True,
            trust_node_cpus=True)

    # ------------------------------------------------------------------ up
    def up(self, idle_timeout_s: float = 30.0) -> TwoNodeCluster:
        t0 = time.perf_counter()
        if os.geteuid() != 0:
            raise Unavailable("a two-node cluster needs root (network namespaces, slurmd)")
        install()
        install_tools()
        clean_stale(self.prefix)
        self._check_subnet_free()
        self.hosts_digest = _hosts_digest()
        try:
            self._write_files()
            self._network()
            self.timings["network_s"] = time.perf_counter() - t0
            if not _munge_ok():
                _run(["install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge"])
                _run([_bin("runuser"), "-u", "munge", "--", _bin("munged")])
                self.started_munged = True
                if not _munge_ok():
                    raise Unavailable("munged started but `munge -n | unmunge` still fails")
            self._save_record()
            self._spawn("slurmctld", self.ctl_host, [_bin("slurmctld"), "-D", "-c", "-f",
                                                     str(self.conf)])
            for host in self.nodes:
                self._spawn(f"slurmd.{host}", host, [_bin("slurmd"), "-D", "-N", host, "-f",
                                                     str(self.conf)])
            self._save_record()
            self._wait_idle(idle_timeout_s)
        except BaseException:
            self.down()
            raise
        self.timings["up_s"] = time.perf_counter() - t0
        return self

    def _check_subnet_free(self) -> None:
        prefix = f"10.{self.subnet}.0."
        used = _run(["ip", "-4", "-o", "addr", "show"]).stdout
        routes = _run(["ip", "-4", "route", "show"]).stdout
        if prefix in used or f"10.{self.subnet}.0.0/" in routes:
            raise Unavailable(f"10.{self.subnet}.0.0/24 is already in use on this machine: "
                              "pick another `subnet`")

    def _write_files(self) -> None:
        for sub in ("state/ctld", "run", "log"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        for host in self.nodes:
            (self.base / "state" / host).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.slurm_conf())
        hosts = Path("/etc/hosts").read_text().rstrip("\n") + "\n"
        hosts += "".join(f"{a} {h}\n" for h, a in self.members)
        (self.base / "hosts").write_text(hosts)

    def _network(self) -> None:
        ip = _bin("ip")
        _run([ip, "link", "add", self.bridge, "type", "bridge"])
        _run([ip, "addr", "add", f"{self.addr(1)}/24", "dev", self.bridge])
        _run([ip, "link", "set", self.bridge, "up"])
        for host, address in self.members:
            ns = self.netns(host)
            _run([ip, "netns", "add", ns])
            self.inodes[ns] = _netns_inode(f"/run/netns/{ns}")
            _run([ip, "link", "add", self.veth(host), "type", "veth", "peer", "name", "mn0",
                  "netns", ns])
            _run([ip, "link", "set", self.veth(host), "master", self.bridge, "up"])
            _run([ip, "-n", ns, "addr", "add", f"{address}/24", "dev", "mn0"])
            _run([ip, "-n", ns, "link", "set", "mn0", "up"])
            _run([ip, "-n", ns, "link", "set", "lo", "up"])

    def _spawn(self, name: str, host: str, argv: list[str]) -> None:
        """Start `argv` in the foreground inside host's netns, with its own hostname and a
        private mount namespace whose /etc/hosts names the cluster."""
        script = ('hostname "$1" && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"')
        full = [_bin("nsenter"), f"--net=/run/netns/{self.netns(host)}", _bin("unshare"),
                "--uts", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                host, str(self.base / "hosts"), *argv]
        log = open(self.base / "log" / f"{name}.stdout", "ab")
        try:
            self.procs[name] = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT,
                                                start_new_session=True)
        finally:
            log.close()

    def sinfo(self) -> dict:
        """{node: state} as slurmctld sees it ({} while it does not answer)."""
        try:
            proc = _run(["sinfo", "-h", "-N", "-o", "%N %T"], check=False, timeout=15,
                        env=self.env())
        except subprocess.SubprocessError:
            return {}
        if proc.returncode != 0:
            return {}
        return dict(line.split() for line in proc.stdout.splitlines() if len(line.split()) == 2)

    def _wait_idle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.sinfo()
            if sorted(states) == self.nodes and all(s == "idle" for s in states.values()):
                return
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            bad = any(s.startswith(("inval", "drain", "down")) for s in states.values())
            if dead or bad or time.monotonic() > deadline:
                tails = {n: _tail(self.base / "log" / f"{n}.log") or
                         _tail(self.base / "log" / f"{n}.stdout") for n in self.procs}
                raise Unavailable(f"the two nodes did not become idle (sinfo: {states}; "
                                  f"exited: {dead}; logs: {tails})")
            time.sleep(0.05)

    def _save_record(self) -> None:
        self.record.write_text(json.dumps({
            "base": str(self.base), "prefix": self.prefix,
            "pids": {n: p.pid for n, p in self.procs.items()},
            "inodes": self.inodes, "started_munged": self.started_munged}))

    # ------------------------------------------------------------------ operations
    def processes(self, comm: Optional[str] = None) -> list[int]:
        """Live processes inside the cluster's namespaces (optionally of one name)."""
        pids = _pids_in_netns({i for i in self.inodes.values() if i})
        return [p for p in pids if comm is None or _comm(p) == comm]

    def link(self, host: str, up: bool) -> None:
        """Cut (or restore) a node's only link, as a failed NIC or switch port would."""
        _run([_bin("ip"), "link", "set", self.veth(host), "up" if up else "down"])

    def run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env=self.env(), **kw)

    # ------------------------------------------------------------------ down
    def down(self) -> None:
        t0 = time.perf_counter()
        _teardown(self.prefix, {n: p.pid for n, p in self.procs.items()}, self.inodes,
                  self.started_munged, self.members, self.bridge, self.netns)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.record.unlink(missing_ok=True)
        self.timings["down_s"] = time.perf_counter() - t0

    def leftovers(self) -> list[str]:
        """Everything of this cluster still present (empty after a clean down())."""
        out = []
        names = set(_run(["ip", "netns", "list"]).stdout.split())
        out += [f"netns {ns}" for ns in self.inodes if ns in names]
        links = _run(["ip", "-o", "link", "show"]).stdout
        out += [f"link {n}" for n in [self.bridge, *(self.veth(h) for h, _ in self.members)]
                if f" {n}:" in links or f" {n}@" in links]
        out += [f"process {p} ({n})" for n, p in
                ((n, p.pid) for n, p in self.procs.items()) if _alive(p)]
        out += [f"process {p} in a cluster namespace"
                for p in _pids_in_netns({i for i in self.inodes.values() if i})]
        if self.started_munged and _munge_ok():
            out.append("munged (started by up())")
        if self.hosts_digest and _hosts_digest() != self.hosts_digest:
            out.append("/etc/hosts changed")
        if self.record.exists():
            out.append(f"record {self.record}")
        return out


def _teardown(prefix, pids: dict, inodes: dict, started_munged: bool, members, bridge,
              netns_of) -> None:
    """TERM every process of the cluster (daemons by pid, then anything left inside its
    namespaces: slurmstepd, job ranks), wait (capped), KILL the rest, delete the
    namespaces (the veth pairs go with them) and the bridge, stop munged if ours."""
    ip = _bin("ip")
    victims = {p for p in pids.values() if p}
    live_inodes = {i for i in inodes.values() if i}
    for ns in {netns_of(h) for h, _ in members}:
        inode = _netns_inode(f"/run/netns/{ns}")
        if inode:
            live_inodes.add(inode)
    for attempt in range(2):
        victims |= set(_pids_in_netns(live_inodes))
        for pid in victims:
            try:
                os.kill(pid, signal.SIGTERM if attempt == 0 else signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (3.0 if attempt == 0 else 5.0)
        while time.monotonic() < deadline:
            victims = {p for p in victims if _alive(p)} | set(_pids_in_netns(live_inodes))
            if not victims:
                break
            time.sleep(0.05)
        if not victims:
            break
    for host, _ in members:
        _run([ip, "netns", "del", netns_of(host)], check=False)
    # the kernel destroys a deleted namespace's veth pairs asynchronously (seen on CI: the
    # root-side ends still listed right after `netns del`): delete them here, and wait
    roots = [f"{prefix}v{host.removeprefix(prefix)}" for host, _ in members]
    for name in roots:
        _run([ip, "link", "del", name], check=False)
    _run([ip, "link", "del", bridge], check=False)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        links = _run([ip, "-o", "link", "show"]).stdout
        if not any(f" {n}:" in links or f" {n}@" in links for n in [*roots, bridge]):
            break
        time.sleep(0.1)
    if started_munged:
        pid = _read_pid(Path("/run/munge/munged.pid"))
        if pid:
            _stop_pid(pid)


def clean_stale(prefix: str) -> None:
    """Tear down what a crashed earlier run of this prefix left (its record in /run, or
    namespaces and a bridge with our names)."""
    record = Path("/run") / f"wsl-scaling-{prefix}.json"
    info = {}
    if record.is_file():
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError):
            info = {}
    probe = TwoNodeCluster(base=Path(info.get("base", "/nonexistent")), prefix=prefix)
    names = set(_run(["ip", "netns", "list"], check=False).stdout.split())
    ours = [probe.netns(h) for h, _ in probe.members]
    links = _run(["ip", "-o", "link", "show"], check=False).stdout
    if not info and not any(ns in names for ns in ours) and f" {probe.bridge}:" not in links:
        return
    # recorded daemon pids are killed only if they still are what we started
    pids = {n: p for n, p in info.get("pids", {}).items()
            if _alive(p) and _comm(p) in ("slurmctld", "slurmd", "nsenter", "unshare", "sh")}
    _teardown(prefix, pids, info.get("inodes", {}), info.get("started_munged", False),
              probe.members, probe.bridge, probe.netns)
    record.unlink(missing_ok=True)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _tail(path: Path, n: int = 400) -> str:
    try:
        return " ".join(path.read_text(errors="replace")[-n:].split())
    except OSError:
        return ""


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print("usage: python -m tests.slurm.multinode_cluster up|down BASE", file=sys.stderr)
        return 2
    base = Path(argv[1]).resolve()
    if argv[0] == "up":
        cluster = TwoNodeCluster(base=base).up()
        print(f"two nodes idle in {cluster.timings['up_s']:.2f} s; "
              f"export SLURM_CONF={cluster.conf}")
        return 0
    clean_stale("wslmn")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
