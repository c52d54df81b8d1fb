"""Jobs for the fault tests (tests/fault) and the soak (bench/soak.py).

Every run is recorded in a ledger outside the system under test: an append-only file named
by ``FAULT_LEDGER``, one JSON line per event ``[event, jid, retry_count, pid, time]`` with
event "start" or "done". A line is written with one O_APPEND write, which the kernel keeps
whole even when the process is SIGKILLed right after, and no Redis fault can touch the file.

``FAULT_SOCKET_TIMEOUT`` (seconds), when set, shrinks redis-py's socket timeout for this
worker's clients (the fault tests use it to detect a black-holed connection sooner).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import resource
import threading
import time
from typing import Any

import sidequest
from sidequest import Job

LEDGER_ENV = "FAULT_LEDGER"
_fd: int | None = None
_lock = threading.Lock()

if os.environ.get("FAULT_SOCKET_TIMEOUT"):
    sidequest.configure(socket_timeout=float(os.environ["FAULT_SOCKET_TIMEOUT"]))


def record(event: str, job: Job) -> None:
    global _fd
    if _fd is None:
        with _lock:
            if _fd is None:
                _fd = os.open(os.environ[LEDGER_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                              0o644)
    retry = job.payload.get("retry_count") if isinstance(job.payload, dict) else None
    line = json.dumps([event, job.jid, retry, os.getpid(), time.time()], default=repr)
    os.write(_fd, line.encode("utf-8", "backslashreplace") + b"\n")


class Work(Job):
    """Sleeps ``seconds`` (a GIL-releasing C-level block) between its start and done lines;
    not at all in a worker started with ``FAULT_NO_SLEEP=1`` (a quick re-run)."""

    name = "fault.Work"

    def perform(self, seconds: float = 0.0, *_: Any) -> None:
        record("start", self)
        if seconds and not os.environ.get("FAULT_NO_SLEEP"):
            time.sleep(seconds)
        record("done", self)


class AsyncBlocker(Job):
    """An ``async def`` job that blocks its event loop (a sync sleep) far past its 1 s timeout:
    the loop cannot deliver the cancellation."""

    name = "fault.AsyncBlocker"
    timeout = 1

    async def perform(self, seconds: float = 60.0) -> None:
        record("start", self)
        time.sleep(seconds)
        record("done", self)


class AsyncTimed(Job):
    """An ``async def`` job that awaits well within its 2 s timeout, on a loop that works."""

    name = "fault.AsyncTimed"
    timeout = 2

    async def perform(self, seconds: float = 1.0) -> None:
        record("start", self)
        await asyncio.sleep(seconds)
        record("done", self)


class AsyncHog(Job):
    """Blocks the event loop (a sync sleep), with no timeout of its own."""

    name = "fault.AsyncHog"

    async def perform(self, seconds: float = 60.0) -> None:
        record("start", self)
        time.sleep(seconds)
        record("done", self)


class AsyncWork(Job):
    """Work as ``async def``: awaits ``seconds`` on the worker's event loop."""

    name = "fault.AsyncWork"

    async def perform(self, seconds: float = 0.0, *_: Any) -> None:
        record("start", self)
        if seconds:
            await asyncio.sleep(seconds)
        record("done", self)


class Stuck(Job):
    """Blocks in C (``time.sleep``) far past its 1 s timeout: the JobTimeout cannot land."""

    name = "fault.Stuck"
    timeout = 1

    def perform(self, seconds: float = 60.0) -> None:
        record("start", self)
        time.sleep(seconds)
        record("done", self)


_hoard: list[bytes] = []


class Hog(Job):
    """Keeps ``mb`` megabytes for the life of its process, as a leaking job would."""

    name = "fault.Hog"

    def perform(self, mb: int) -> None:
        record("start", self)
        _hoard.append(b"x" * (mb * 1024 * 1024))
        record("done", self)


class HogAndWait(Job):
    """Grows past the process's max_memory at once, then runs on past the stop's deadline:
    a job that brings every process it runs in over the limit."""

    name = "fault.HogAndWait"
    retry = False

    def perform(self, mb: int, seconds: float) -> None:
        record("start", self)
        _hoard.append(b"x" * (mb * 1024 * 1024))
        time.sleep(seconds)
        record("done", self)


class AsyncLeak(Job):
    """``async def``: awaits ``delay`` seconds, then keeps ``mb`` megabytes for the life of its
    process (an async job's leak, seen by the memory check only at a heartbeat)."""

    name = "fault.AsyncLeak"

    async def perform(self, delay: float, mb: int) -> None:
        record("start", self)
        await asyncio.sleep(delay)
        _hoard.append(b"x" * (mb * 1024 * 1024))
        record("done", self)


class Noop(Job):
    """Records only its completion (the soak's million jobs)."""

    name = "fault.Noop"

    def perform(self, *_: Any) -> None:
        record("done", self)


class Record(Job):
    """Takes any arguments and only records itself (the bad-input and fuzz tests push it)."""

    name = "fault.Record"

    def perform(self, *_: Any) -> None:
        record("start", self)
        record("done", self)


class Flaky(Job):
    """Fails its first ``failures`` attempts, then succeeds (retries after the hook's delay)."""

    name = "fault.Flaky"

    @classmethod
    def retry_in(cls, count: int, exc: BaseException, payload: dict[str, Any]) -> float:
        return 0.01

    def perform(self, failures: int = 1) -> None:
        record("start", self)
        attempt = self.payload.get("retry_count")
        attempt = attempt + 1 if isinstance(attempt, int) else 0
        if attempt < failures:
            raise RuntimeError(f"planned failure {attempt + 1} of {failures}")
        record("done", self)


class HoldGil(Job):
    """Blocks in C for ``seconds`` WITHOUT releasing the GIL (libc sleep through PyDLL); not
    at all in a worker started with ``FAULT_NO_SLEEP=1``."""

    name = "fault.HoldGil"

    def perform(self, seconds: int) -> None:
        record("start", self)
        if not os.environ.get("FAULT_NO_SLEEP"):
            ctypes.PyDLL(None).sleep(int(seconds))
        record("done", self)


class HoldGilOnStop(Job):
    """Runs until its process stops, then blocks in C holding the GIL for ``seconds``: the
    graceful stop cannot finish, and the process ends by its hard deadline instead."""

    name = "fault.HoldGilOnStop"

    def perform(self, seconds: int) -> None:
        record("start", self)
        while not self.stopping():
            time.sleep(0.05)
        ctypes.PyDLL(None).sleep(int(seconds))


class Exit(Job):
    """Poison pill: ends the whole process at once, as a C extension calling exit() would."""

    name = "fault.Exit"

    def perform(self) -> None:
        record("start", self)
        os._exit(1)


class Segfault(Job):
    """Poison pill: reads address 0."""

    name = "fault.Segfault"

    def perform(self) -> None:
        record("start", self)
        ctypes.string_at(0)


class Oom(Job):
    """Poison pill: caps the process's address space a little above what it uses, then
    allocates past the cap, as a job that runs out of memory under a container limit does."""

    name = "fault.Oom"

    def perform(self, mode: str = "python") -> None:
        record("start", self)
        with open("/proc/self/status", encoding="ascii") as status:
            vm = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
        cap = (vm + 64 * 1024) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
        if mode == "python":
            blocks = []
            while True:  # MemoryError in Python, or a failed malloc in C that kills us
                blocks.append(bytearray(16 * 1024 * 1024))
        # "c": what an extension that does not check malloc's result does: write through NULL
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        address = libc.malloc(ctypes.c_size_t(1 << 40))
        ctypes.memset(address or 0, 1, 1 << 20)


#: Two slots, leased for 30 s: far longer than a test waits, so only a release frees them.
two_slots = sidequest.limiter.concurrent("fault-two-slots", 2, lock_timeout=30)


class Limited(Job):
    """Holds one of ``two_slots`` while it sleeps ``seconds``."""

    name = "fault.Limited"

    def perform(self, seconds: float = 0.0) -> None:
        with two_slots:
            record("start", self)
            time.sleep(seconds)
            record("done", self)
