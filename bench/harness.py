"""Pieces every bench shares: a private redis-server, child processes, memory, the machine.

Only the orchestrating side imports this (the project's own venv: redis-py and psutil); the
code that runs inside another system's virtual environment lives in bench/agents/ and needs
nothing but the standard library and redis-py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO

import redis

try:
    import psutil  # type: ignore[import-untyped,unused-ignore]
except ImportError:  # pragma: no cover - a dev extra
    sys.exit("psutil is missing: run .venv/bin/pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parent.parent
POLL = 0.005  # counter poll: 5 ms is <0.1% of a 100k-job drain and costs Redis nothing
RSS_EVERY = 0.05
STALL = 30.0  # no completion for this long means the worker is stuck: fail loudly
MB = 1024 * 1024  # as ps and top count


class BenchError(Exception):
    """The bench could not measure: a stalled or dead worker, a missing job, a dead Redis."""


def progress(text: str) -> None:
    # stderr, so that stdout holds only the report.
    sys.stderr.write(text)
    sys.stderr.flush()


def rate(jobs: int, seconds: float) -> float:
    if seconds <= 0:
        raise BenchError(f"{jobs} jobs took no measurable time; give more jobs (-n)")
    return jobs / seconds


# -- the private Redis ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A throwaway redis-server: free loopback port, its own dir, nothing written to disk."""

    host = "127.0.0.1"

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.dir = directory
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, db=db)

    def start(self) -> None:
        # The free port can be taken by someone else before redis binds it: try a few.
        for _ in range(3):
            self.port = free_port()
            if self._spawn_and_wait():
                return
        raise BenchError(f"redis-server would not start; see {self.dir / 'redis.log'}")

    def _spawn_and_wait(self) -> bool:
        self._log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - closed in stop()
        args = ["--port", str(self.port), "--bind", self.host, "--save", "",
                "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no"]
        # Own session: Ctrl-C reaches only the bench, which stops the worker before Redis.
        self._proc = subprocess.Popen([self.executable, *args], stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        deadline = time.monotonic() + 10
        with self.client() as probe:
            while self._proc.poll() is None and time.monotonic() < deadline:
                try:
                    return bool(probe.ping())
                except redis.ConnectionError:
                    time.sleep(0.05)
        self.stop()
        return False

    def version(self) -> str:
        with self.client() as client:
            return str(client.info("server")["redis_version"])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- child processes -----------------------------------------------------------------------


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, wait, SIGKILL if it ignores us; returns the exit code."""
    terminate_all([proc], timeout)
    return proc.wait()


def terminate_all(procs: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    """terminate() for several processes: all get SIGTERM first, so that they shut down in
    parallel, and ``timeout`` bounds the whole wait, not each process's."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL what is left of a child's session (pool processes whose parent is gone).

    Only for children started with start_new_session=True: their process group is theirs.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no worker log)"


# -- memory --------------------------------------------------------------------------------


class RssSampler:
    """Peak resident memory of a process and its children, sampled on a thread."""

    def __init__(self, pid: int, every: float = RSS_EVERY) -> None:
        self.pid = pid
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss(self.pid))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        # A child that exited between the listing and the read holds no memory.
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total


# -- waiting for completions ---------------------------------------------------------------


@dataclass(frozen=True)
class Drain:
    first_at: float  # when the counter was first seen above 0
    first_count: int  # its value then: those jobs finished before the window opened
    last_at: float  # when it was first seen at N
    jobs: int

    @property
    def rate(self) -> float:
        return rate(self.jobs - self.first_count, self.last_at - self.first_at)


def wait_count(read: Callable[[], int], jobs: int, *workers: subprocess.Popen[bytes],
               stall: float = STALL, on_first: Callable[[], object] | None = None) -> Drain:
    """Poll a completion count until it reaches ``jobs``; fail if the workers stall or any
    of them exits. ``on_first`` is called when the first completion is seen (the drain's
    window opens), e.g. to snapshot the worker's CPU time."""
    first: tuple[float, int] | None = None
    seen, changed = 0, time.perf_counter()
    while True:
        count = read()
        now = time.perf_counter()
        if count != seen:
            seen, changed = count, now
            if first is None:
                first = (now, count)
                if on_first is not None:
                    on_first()
        if first is not None and count >= jobs:
            return Drain(first[0], first[1], now, jobs)
        dead = next((worker for worker in workers if worker.poll() is not None), None)
        if dead is not None:
            raise BenchError(f"the worker (pid {dead.pid}) exited (code {dead.returncode})"
                             f" after {count:,} of {jobs:,} jobs")
        if now - changed > stall:
            raise BenchError(f"no job finished for {stall:.0f} s: {count:,} of {jobs:,} done")
        time.sleep(POLL)


def counter_of(client: redis.Redis, key: str) -> Callable[[], int]:
    return lambda: int(client.get(key) or 0)


# -- the machine ---------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def hiredis_text() -> str:
    from redis.utils import HIREDIS_AVAILABLE

    if not HIREDIS_AVAILABLE:
        return "hiredis not installed (pure-Python parser)"
    return f"hiredis {metadata.version('hiredis')} installed"


def machine_text() -> str:
    cpus = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    return (f"{cpus} CPUs ({usable} usable), {cpu_model()}, {platform.system()}"
            f" {platform.machine()}")


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# -- command line --------------------------------------------------------------------------


def at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse
