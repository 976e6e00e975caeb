"""CPU time from /proc (Linux): of one process, and of the whole machine."""

from __future__ import annotations

import os
import time


def _tick_seconds() -> float:
    return 1.0 / os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float | None:
    """User + system CPU time of a process; None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rpartition(b")")[2].split()
    except OSError:
        return None
    # After the command name: state is field 3 of proc(5), utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) * _tick_seconds()


def machine_seconds() -> float | None:
    """CPU time all processes ran (user, nice, system), summed over the cores.

    Interrupt and softirq time is left out: the kernel charges loopback networking there, and
    this is about other programs competing for the cores.
    """
    try:
        with open("/proc/stat", "rb") as file:
            fields = file.readline().split()
    except OSError:
        return None
    return (int(fields[1]) + int(fields[2]) + int(fields[3])) * _tick_seconds()


def stolen_seconds() -> float | None:
    """CPU time the hypervisor gave other guests while this one wanted it ("steal" in
    /proc/stat), summed over the cores: on a shared VM, a step's most common disturbance. On
    2026-12-04 a loaded step lost up to 22 % of both cores this way with nothing else running
    here, which ``others_load`` cannot see."""
    try:
        with open("/proc/stat", "rb") as file:
            fields = file.readline().split()
    except OSError:
        return None
    return int(fields[8]) * _tick_seconds() if len(fields) > 8 else None


def others_load(seconds: float) -> float | None:
    """Cores used by every process but this one over the next ``seconds`` (blocks)."""
    before, own = machine_seconds(), process_seconds(os.getpid())
    time.sleep(seconds)
    after, own_after = machine_seconds(), process_seconds(os.getpid())
    if before is None or after is None or own is None or own_after is None:
        return None
    return max(0.0, (after - before - (own_after - own)) / seconds)


__all__ = ["machine_seconds", "others_load", "process_seconds", "stolen_seconds"]
