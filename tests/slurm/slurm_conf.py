"""The one slurm.conf writer of the test clusters (local_cluster.py: one node on 127.0.0.1;
multinode_cluster.py: two nodes in network namespaces). The settings are the measured
recipe of shared/notes/slurm-local.md: fast scheduling, a short requeue hold, no accounting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Node:
    name: str
    addr: str
    cpus: int
    mem_mb: int


def slurm_conf(base: Path, *, title: str, cluster: str, ctl_host: str, ctl_addr: str,
               nodes: list[Node], partition: str, ctld_port: int = 6817,
               slurmd_port: int = 6818, slurmd_timeout_s: int = 30,
               per_node_files: bool = False, trust_node_cpus: bool = False) -> str:
    """slurm.conf text for a cluster whose state, pid and log files live under `base`.

    per_node_files: slurmd spool/pid/log paths carry the node name (`%n`), for several
    slurmd on one machine. trust_node_cpus: nodes sharing this machine's cores keep the CPU
    counts given here instead of the hardware's (SlurmdParameters=config_overrides)."""
    spool, suffix = ("%n", ".%n") if per_node_files else ("d", "")
    overrides = ("# the nodes share this machine's cores: trust the CPU counts given here "
                 "over the hardware\nSlurmdParameters=config_overrides\n"
                 if trust_node_cpus else "")
    node_lines = "".join(f"NodeName={n.name} NodeAddr={n.addr} CPUs={n.cpus} "
                         f"RealMemory={n.mem_mb} State=UNKNOWN\n" for n in nodes)
    return f"""# {title}
ClusterName={cluster}
SlurmctldHost={ctl_host}({ctl_addr})
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={base}/state/ctld
SlurmdSpoolDir={base}/state/{spool}
SlurmctldPidFile={base}/run/slurmctld.pid
SlurmdPidFile={base}/run/slurmd{suffix}.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd{suffix}.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={base}/log/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=5,sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
EnforcePartLimits=ALL
ReturnToService=2
MinJobAge=600
InactiveLimit=0
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout={slurmd_timeout_s}
{overrides}{node_lines}PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
