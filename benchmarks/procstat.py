"""CPU and memory of processes, read from /proc (Linux); imports nothing heavy, for the child scripts too."""

from __future__ import annotations

import os
from pathlib import Path


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads and its waited-for children (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def machine_busy_cpu_seconds() -> float:
    """CPU time all processes on the machine have used since boot (/proc/stat, all cores, not idle)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM).

    Not ru_maxrss: Linux carries the parent's RSS at fork/vfork over exec into the child's ru_maxrss
    (a child of a 500 MiB parent reports >= 500 MiB), so in a child of the benchmark it measures the
    benchmark. VmHWM belongs to the child's own address space, which exec starts afresh.
    """
    return _status_kib("VmHWM")


def rss_kib() -> int:
    return _status_kib("VmRSS")
