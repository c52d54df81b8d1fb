#!/usr/bin/env python3
"""How fast a worker gets through the quarantine: suspects (jobs in flight at their
``max_deaths - 1``-th process death) run one at a time, each alone in the process, so after a
crash the quarantine's rate is what the recovery waits on. Prints the suspects' rate beside a
plain drain of the same jobs on the same worker.

    .venv/bin/python bench/quarantine.py                  # 2,000 jobs, 3 rounds
    .venv/bin/python bench/quarantine.py --jobs 500 --rounds 1

A private redis-server is started on a free loopback port and stopped at the end; the worker
runs in this process (``embed``) with 10 threads. The suspects are put in the quarantine as
the reaper leaves them (with their death count); each run is timed from the first suspect
taken to the last one done; the median of the rounds is printed.
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
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import redis  # noqa: E402

import sidequest  # noqa: E402
from bench.harness import PrivateRedis, cpu_model  # noqa: E402
from sidequest import Job, keys  # noqa: E402
from sidequest.config import build  # noqa: E402
from sidequest.payload import loads  # noqa: E402
from sidequest.worker import embed  # noqa: E402

CONCURRENCY = 10


class Done:
    """Completions counted in this process, and when the first of a round came."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = self.target = 0
        self.first = 0.0
        self.event = threading.Event()

    def expect(self, jobs: int) -> None:
        with self.lock:
            self.count, self.target, self.first = 0, jobs, 0.0
            self.event.clear()

    def add(self) -> None:
        with self.lock:
            self.count += 1
            self.first = self.first or time.perf_counter()
            if self.count >= self.target:
                self.event.set()


DONE = Done()


class Noop(Job):
    name = "bench.QuarantineNoop"

    def perform(self, index: int) -> None:
        DONE.add()


def wait_done(what: str) -> float:
    """Seconds from the first completion to the last."""
    if not DONE.event.wait(300):
        raise SystemExit(f"{what}: only {DONE.count} of {DONE.target} jobs ran in 300 s")
    return time.perf_counter() - DONE.first


def plain(jobs: int) -> float:
    DONE.expect(jobs)
    Noop.perform_bulk([[i] for i in range(jobs)])
    return wait_done("plain drain")


def suspects(client: redis.Redis, jobs: int, max_deaths: int) -> float:
    """Quarantine ``jobs`` payloads, each with the death count the reaper gives a suspect."""
    DONE.expect(jobs)
    raws = _payloads(client, jobs)
    pipe = client.pipeline(transaction=False)
    for raw in raws:
        pipe.set(keys.deaths(loads(raw)["jid"]), max_deaths - 1, ex=600)
    pipe.lpush(keys.QUARANTINE, *raws)
    pipe.execute()
    return wait_done("quarantine")


def _payloads(client: redis.Redis, jobs: int) -> list[bytes]:
    """Payloads as a client writes them, built in a scratch queue nobody serves."""
    Noop.set(queue="bench-quarantine-scratch").perform_bulk([[i] for i in range(jobs)])
    raws = cast(list[bytes], client.lrange(keys.queue("bench-quarantine-scratch"), 0, -1))
    client.delete(keys.queue("bench-quarantine-scratch"))
    return raws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each kind")
    args = parser.parse_args(argv)
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is missing: sudo apt-get install redis-server")
    with tempfile.TemporaryDirectory(prefix="sidequest-quarantine-bench-") as directory, \
            PrivateRedis(executable, Path(directory)) as redis_server:
        sidequest.configure(redis_url=redis_server.url())
        # Beats often, so a worker looks at the quarantine soon after it fills.
        config = build(redis_url=redis_server.url(), concurrency=CONCURRENCY,
                       heartbeat_interval=0.2)
        worker = embed(config)
        try:
            seconds = rounds(redis_server.client(), args.jobs, args.rounds, config.max_deaths)
        finally:
            worker.stop()
    print(f"{cpu_model()}; -c {CONCURRENCY}, {args.jobs:,} jobs a round, median of {args.rounds}")
    rates = {kind: args.jobs / statistics.median(runs) for kind, runs in seconds.items()}
    for kind, rate in rates.items():
        print(f"{kind:>9}: {rate:8,.0f} jobs/s  {rate / rates['plain']:5.2f} x plain")
    return 0


def rounds(client: redis.Redis, jobs: int, count: int, max_deaths: int) -> dict[str, list[float]]:
    """Seconds of each round of each kind, interleaved so that a busy moment hits both."""
    plain(min(jobs, 1000))  # warm up: connections, scripts loaded
    seconds: dict[str, list[float]] = {"plain": [], "suspects": []}
    for _ in range(count):
        seconds["plain"].append(plain(jobs))
        seconds["suspects"].append(suspects(client, jobs, max_deaths))
    return seconds


if __name__ == "__main__":
    sys.exit(main())
