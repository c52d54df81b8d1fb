"""What one drained job costs: the worker's CPU time and context switches, and Redis's CPU.

A rate says which system is faster on this machine; the cost per job says why, and carries
to other machines better than the rate does. Two snapshots are taken, at the drain's first
completion and at its last, so start-up and shutdown are left out:

- CPU time (user and system) of the worker's whole process tree, from /proc (psutil);
- voluntary context switches (a thread waited: for a socket, a lock, the interpreter lock)
  and involuntary ones (the kernel took the core away, often to give it to another thread
  of the same process), summed over every thread of the tree (``/proc/<pid>/task/*/status``:
  the process's own status counts its main thread only);
- the Redis server's CPU time (``INFO cpu``), which includes the bench's own counter polls:
  about 200 GETs a second, the same for every system.

A thread that exits between the snapshots takes its context switches with it; the workers
measured here keep their threads for the whole drain.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped,unused-ignore]
import redis


@dataclass(frozen=True)
class Usage:
    """Totals at one moment; only differences between two of them mean anything."""

    user: float  # CPU seconds of the worker's process tree
    system: float
    voluntary: int
    involuntary: int
    redis: float  # CPU seconds of the Redis server, user + system


@dataclass(frozen=True)
class Cost:
    """Per drained job, between two snapshots."""

    cpu_us: float  # worker CPU, user + system, microseconds
    voluntary: float
    involuntary: float
    redis_us: float


def _switches(pid: int) -> tuple[int, int]:
    voluntary = involuntary = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        with contextlib.suppress(OSError):  # a thread that ended while we listed them
            for line in status.read_text().splitlines():
                name, _, value = line.partition(":")
                if name == "voluntary_ctxt_switches":
                    voluntary += int(value)
                elif name == "nonvoluntary_ctxt_switches":
                    involuntary += int(value)
    return voluntary, involuntary


def usage(pid: int, server: redis.Redis) -> Usage:
    """Snapshot of the process tree rooted at ``pid`` and of the Redis server."""
    user = system = 0.0
    voluntary = involuntary = 0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = proc.cpu_times()
            user, system = user + times.user, system + times.system
            vol, invol = _switches(proc.pid)
            voluntary, involuntary = voluntary + vol, involuntary + invol
    cpu = server.info("cpu")
    return Usage(user, system, voluntary, involuntary,
                 float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]))


def per_job(before: Usage, after: Usage, jobs: int) -> Cost:
    jobs = max(jobs, 1)
    # Sums first, then the difference: with no tick of CPU in the window the two sums are
    # equal and give exactly 0, where u2 + s2 - u1 - s1 can round to -1e-16 and print "-0".
    return Cost(
        cpu_us=((after.user + after.system) - (before.user + before.system)) / jobs * 1e6,
        voluntary=(after.voluntary - before.voluntary) / jobs,
        involuntary=(after.involuntary - before.involuntary) / jobs,
        redis_us=(after.redis - before.redis) / jobs * 1e6,
    )
