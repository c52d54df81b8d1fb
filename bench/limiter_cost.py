#!/usr/bin/env python3
"""What a rate limiter adds to a job: drains of jobs that do nothing, then of jobs that do
nothing inside ``with limiter:`` (a bucket, a sliding window, a concurrent limiter, each with
a limit high enough never to refuse), and the rate of each as a ratio to the plain job.

    .venv/bin/python bench/limiter_cost.py                  # 5,000 jobs a drain, 3 rounds
    .venv/bin/python bench/limiter_cost.py --jobs 2000 --rounds 1

A private redis-server is started on a free loopback port and stopped at the end; the worker
runs in this process (``embed``) with 5 threads. Each drain is timed from its bulk push to its
last completion; the median of the rounds is printed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import sidequest  # noqa: E402
from bench.harness import PrivateRedis, cpu_model  # noqa: E402
from sidequest import Job, limiter  # noqa: E402
from sidequest.config import build  # noqa: E402
from sidequest.worker import embed  # noqa: E402

LIMITERS: dict[str, Any] = {
    "plain": None,
    "bucket": limiter.bucket("bench-bucket", 10**9, "second"),
    "window": limiter.window("bench-window", 10**9, "second"),
    "concurrent": limiter.concurrent("bench-concurrent", 1000, lock_timeout=30),
}


class Done:
    """Completions counted in this process (no Redis command, the same for every kind)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.target = 0
        self.event = threading.Event()

    def expect(self, jobs: int) -> None:
        with self.lock:
            self.count, self.target = 0, jobs
            self.event.clear()

    def add(self) -> None:
        with self.lock:
            self.count += 1
            if self.count >= self.target:
                self.event.set()


DONE = Done()


class Limited(Job):
    name = "bench.Limited"
    retry = False

    def perform(self, kind: str) -> None:
        made = LIMITERS[kind]
        if made is None:
            DONE.add()
            return
        with made:
            DONE.add()


def drain(kind: str, jobs: int) -> float:
    """Seconds from the bulk push of ``jobs`` jobs to the last one's completion."""
    DONE.expect(jobs)
    started = time.perf_counter()
    Limited.perform_bulk([[kind]] * jobs)
    if not DONE.event.wait(300):
        raise SystemExit(f"{kind}: only {DONE.count} of {jobs} jobs ran in 300 s")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per drain")
    parser.add_argument("--rounds", type=int, default=3, help="drains per kind")
    args = parser.parse_args(argv)
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is missing: sudo apt-get install redis-server")
    with tempfile.TemporaryDirectory(prefix="sidequest-limiter-bench-") as directory:
        redis_server = PrivateRedis(executable, Path(directory))
        redis_server.start()
        worker = None
        try:
            sidequest.configure(redis_url=redis_server.url())
            worker = embed(build(redis_url=redis_server.url(), concurrency=5))
            drain("plain", min(args.jobs, 1000))  # warm up: connections, scripts loaded
            seconds: dict[str, list[float]] = {kind: [] for kind in LIMITERS}
            for _ in range(args.rounds):
                for kind in LIMITERS:  # interleaved, so a busy moment hits every kind
                    seconds[kind].append(drain(kind, args.jobs))
            print(f"{cpu_model()}; -c 5, {args.jobs:,} jobs a drain, median of {args.rounds}")
            plain = args.jobs / statistics.median(seconds["plain"])
            for kind, runs in seconds.items():
                per_second = args.jobs / statistics.median(runs)
                print(f"{kind:>10}: {per_second:8,.0f} jobs/s  {per_second / plain:5.2f} x plain"
                      f"  ({1e6 / per_second - 1e6 / plain:+6.0f} us a job)")
        finally:
            if worker is not None:
                worker.stop()
            redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
