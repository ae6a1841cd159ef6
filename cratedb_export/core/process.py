"""Whether the process that holds a lease is gone, told from the lease itself where that is certain.

A run killed with SIGKILL never tells Dagster it ended: with the default run launcher its run stays STARTED
until someone terminates it, and the days it leased would wait for that. The lease therefore also names
the process that took it — host, boot, PID namespace, PID and the PID's start time — and a run on the same
machine (the same kernel boot, the same PID namespace) can see for itself that this process no longer
exists. Anywhere else (another host, another container's namespace, no /proc) nothing is concluded, and
the holder's run status decides as before.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from functools import cache


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return None


def _started(pid: int) -> str | None:
    """The PID's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), so a reused PID differs."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


@cache
def _namespace() -> tuple[str, str | None, str | None]:
    try:
        pid_ns: str | None = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_ns = None
    return socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), pid_ns


def this_process() -> dict[str, object]:
    """What a lease records of the process taking it."""
    host, boot, pid_ns = _namespace()
    pid = os.getpid()
    return {"host": host, "pid": pid, "boot_id": boot, "pid_ns": pid_ns, "pid_started": _started(pid)}


def process_gone(recorded: Mapping[str, object]) -> bool:
    """True only when `recorded` names a process of this machine's boot and PID namespace that has ended."""
    host, boot, pid_ns = _namespace()
    pid, started = recorded.get("pid"), recorded.get("pid_started")
    if boot is None or pid_ns is None or not isinstance(pid, int) or not isinstance(started, str):
        return False
    if (recorded.get("host"), recorded.get("boot_id"), recorded.get("pid_ns")) != (host, boot, pid_ns):
        return False
    now = _started(pid)
    if now is None:
        return True  # no such process
    if now != started:
        return True  # the PID belongs to a newer process
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed child its parent has not reaped yet: it has ended, though its PID is still listed."""
    stat = _read(f"/proc/{pid}/stat")
    return stat is not None and stat.rsplit(")", 1)[-1].split()[0] == "Z"
