"""Pacing in a real worker: short compute-bound jobs park threads, and jobs that wait get
every thread back (worker/flow.py)."""

from __future__ import annotations

import threading

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job

CONCURRENCY = 8
BARRIER = threading.Barrier(CONCURRENCY)
DONE: list[int] = []
LOCK = threading.Lock()


class Crunch(Job):
    """A short job that holds the interpreter lock the whole time."""

    def perform(self, n: int) -> None:
        sum(i * i for i in range(n))
        with LOCK:
            DONE.append(n)


class Together(Job):
    """Finishes only when CONCURRENCY of them run at once."""

    def perform(self) -> None:
        BARRIER.wait(timeout=20)
        with LOCK:
            DONE.append(-1)


def done(kind: int | None = None) -> int:
    with LOCK:
        return len(DONE) if kind is None else DONE.count(kind)


# Timed: the flow parks threads only while the process gets most of a core, which it does
# not while the suite's other phases share the machine's two.
@pytest.mark.timed
def test_compute_bound_jobs_park_threads_and_waiting_jobs_call_them_back(
        r: redis.Redis) -> None:
    DONE.clear()
    BARRIER.reset()
    Crunch.perform_bulk([[300] for _ in range(200_000)])
    with running_worker(concurrency=CONCURRENCY) as worker:
        wait_for(lambda: worker.manager.active < CONCURRENCY, timeout=30,
                 what="fewer threads taking compute-bound jobs")
        r.delete("queue:default")  # the rest of the burst is not needed
        Together.perform_bulk([[] for _ in range(CONCURRENCY)])
        wait_for(lambda: done(-1) == CONCURRENCY, timeout=30,
                 what=f"{CONCURRENCY} jobs that each wait for all the others")


def test_adaptive_threads_off_keeps_every_thread(r: redis.Redis) -> None:
    DONE.clear()
    Crunch.perform_bulk([[300] for _ in range(30_000)])
    seen: set[int] = set()
    with running_worker(concurrency=CONCURRENCY, adaptive_threads=False) as worker:
        def sample() -> bool:
            seen.add(worker.manager.active)
            return done() >= 20_000
        wait_for(sample, timeout=60, what="20,000 jobs")
    assert seen == {CONCURRENCY}
