"""CPU and memory of the bench's processes, from ``/proc``.

Ports, readiness and stopping are the test harness's (``harness.stack``): every process is
stopped by the object that started it (SIGTERM, then SIGKILL), never by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """A process's CPU time so far and its resident memory (now and at its peak)."""

    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def usage(pid: int) -> Usage:
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may contain spaces; the fields after it are fixed.
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
    memory: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                memory[key] = int(value.split()[0]) * 1024
    return Usage(cpu, memory.get("VmRSS", 0), memory.get("VmHWM", 0))


def control_plane_cpu(state: Path) -> float | None:
    """CPU seconds used so far by the local control plane's API server and etcd (their pid
    files in ``state``), or None when the cluster is not the local one."""
    total = 0.0
    for name in ("kube-apiserver", "etcd"):
        try:
            pid = int((state / f"{name}.pid").read_text().strip())
            total += usage(pid).cpu_seconds
        except (OSError, ValueError):
            return None
    return total
