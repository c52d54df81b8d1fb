"""The job the benches run on Sidequest: it does nothing but count itself.

The count lives in database 1 of the bench's private Redis, apart from the keys Sidequest
uses in database 0, so the bench measures completions without trusting the system under test
(its stats are flushed only every heartbeat, and an acknowledgement is not a completion).
Every other system's bench job does the same work (bench/agents/).
"""

from __future__ import annotations

import time
from typing import Any

import redis

from bench.agents import common
from sidequest import Job

#: Set by the bench for the worker it starts: ``redis://127.0.0.1:PORT/1``.
COUNTER_URL_ENV = common.COUNTER_URL_ENV
DONE_KEY = common.DONE_KEY


def counter() -> redis.Redis:
    return common.counter()


class Noop(Job):
    name = "bench.Noop"
    # A failure would mean a bug in the bench, not load to measure: do not retry it.
    retry = False

    def perform(self, *args: Any) -> None:
        # (index) for throughput; (index, push time) when the bench measures latency.
        started = time.time()
        common.record(args[1] if len(args) > 1 else None, started)


# The feature bench (bench/features.py): the same one-INCR job, alone, under a limiter and in a
# batch, to measure what each feature adds per job.
_limiter: Any = None


class Limited(Job):
    name = "bench.Limited"
    retry = False

    def perform(self, *args: Any) -> None:
        global _limiter
        if _limiter is None:
            from sidequest import limiter

            _limiter = limiter.bucket("bench", 10**9, "second")  # never full: the cost only
        with _limiter:
            common.record(None, time.time())


class Batched(Job):
    name = "bench.Batched"
    retry = False

    def perform(self, *args: Any) -> None:
        common.record(None, time.time())


# The capacity bench (bench/capacity.py): its counter lives on a Redis of its own, so the
# measured server does only Sidequest's work. FailsOnce fails its first run and asks to be
# retried after 1 s (plus Sidekiq's 0-9 s jitter): the retry path without the default 15 s
# minimum wait. Not 0: as in Sidekiq, a retry_in of 0 or less means the default delay.
class FailsOnce(Job):
    name = "bench.FailsOnce"

    def perform(self, *args: Any) -> None:
        if "retry_count" not in self.payload:
            raise RuntimeError("the bench's planned first failure")
        common.record(None, time.time())

    @classmethod
    def retry_in(cls, count: int, exc: BaseException, payload: Any) -> float:
        return 1.0


# The async bench (bench/async_bench.py): the same I/O-bound coroutines arq runs there
# (bench/agents/arq_async.py), on the worker's event loop.
class AsyncSleep(Job):
    name = "bench.AsyncSleep"
    retry = False

    async def perform(self, *args: Any) -> None:
        await common.async_work("sleep")


class AsyncIncr(Job):
    name = "bench.AsyncIncr"
    retry = False

    async def perform(self, *args: Any) -> None:
        await common.async_work("incr")
