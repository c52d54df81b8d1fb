"""One worker process runs 10,000 async jobs that each wait a second, in under 30 s, with
its memory under 200 MB: async jobs wait on the event loop, not a thread each."""

from __future__ import annotations

import threading
import time

import psutil
import redis

from apps.fault_jobs import AsyncWork
from fault.conftest import SpawnWorker
from fault.harness import Ledger
from helpers import wait_for

JOBS = 10_000
MB = 1024 * 1024


def test_ten_thousand_one_second_async_jobs(
    spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger
) -> None:
    AsyncWork.perform_bulk([[1.0]] * JOBS)
    worker = spawn("-c", "2", "--async-concurrency", "2000")
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        proc = psutil.Process(worker.pid)
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    wait_for(lambda: ledger.counts("start"), what="the first async job")
    started = time.monotonic()
    wait_for(lambda: ledger.done_count() == JOBS, timeout=60, what="10,000 async jobs done")
    took = time.monotonic() - started
    done.set()
    sampler.join()
    print(f"{JOBS:,} async jobs of 1 s: {took:.1f} s, peak RSS {peak / MB:.0f} MB")
    assert took < 30 and peak < 200 * MB
