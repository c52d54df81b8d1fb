"""What every system's bench job and pusher share: the counter, the timing, the command line.

The job of every system does the same work: one INCR of a counter in database 1 of the
bench's private Redis, apart from the database the system under test uses, so that the bench
counts completions without trusting any system's own stats. A latency job also appends
"<push time> <start time>" (epoch seconds; one machine, one clock) before counting itself,
so the entry is there by the time the counter shows the job done.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis

#: The system's own Redis (database 0): direct, or through the latency proxy.
REDIS_URL_ENV = "BENCH_REDIS_URL"
#: The counter: ``redis://127.0.0.1:PORT/1``, always direct.
COUNTER_URL_ENV = "BENCH_COUNTER_URL"
DONE_KEY = "bench:done"
LATENCY_KEY = "bench:latency"
QUEUE = "default"
BATCH = 1000  # bulk pushes go in batches of this many, for every system with a bulk API

_lock = threading.Lock()
_client: redis.Redis | None = None


def redis_url() -> str:
    return _env(REDIS_URL_ENV)


def counter_url() -> str:
    return _env(COUNTER_URL_ENV)


def _env(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        raise RuntimeError(f"{name} is not set; run this through bench/suite.py")
    return url


def counter() -> redis.Redis:
    """One client for every thread: each command borrows a connection from its pool.

    redis-py's pool notices a fork and opens new connections in the child, so prefork pools
    are safe too.
    """
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = redis.Redis.from_url(counter_url())
    return _client


def latency_entry(pushed_at: float, started: float) -> str:
    return f"{pushed_at!r} {started!r}"


def record(pushed_at: float | None, started: float) -> None:
    """The whole bench job: count one completion (and its latency when it has a push time)."""
    client = counter()
    if pushed_at is None:
        client.incr(DONE_KEY)
        return
    client.rpush(LATENCY_KEY, latency_entry(pushed_at, started))
    client.incr(DONE_KEY)


# -- the async bench (bench/async_bench.py) ------------------------------------------------

#: The I/O-bound jobs both async systems run, by kind: "sleep" waits 10 ms on the event loop,
#: then counts itself; "incr" only counts itself. Both count with one INCR over redis.asyncio.
ASYNC_KINDS = ("sleep", "incr")
ASYNC_SLEEP = 0.01

_async_client: Any = None


def _async_counter() -> Any:
    """One redis.asyncio client per process, made on first use (on the loop that runs the
    jobs: a process of either system runs its async jobs on one event loop)."""
    global _async_client
    if _async_client is None:
        from redis import asyncio as aioredis

        _async_client = aioredis.Redis.from_url(counter_url())
    return _async_client


async def async_work(kind: str) -> None:
    """The whole async bench job, the same in every system."""
    if kind == "sleep":
        import asyncio

        await asyncio.sleep(ASYNC_SLEEP)
    await _async_counter().incr(DONE_KEY)


# -- pushing -------------------------------------------------------------------------------

PushOne = Callable[[int, "float | None"], Any]  # (index, push time or None)
PushMany = Callable[[Sequence[int]], Any]  # a batch of indexes, one call of the bulk API


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Push bench jobs; prints one JSON line.")
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("single", "bulk"):
        cmd = sub.add_parser(mode)
        cmd.add_argument("--count", type=int, required=True)
    sub.add_parser("latency").add_argument("--gaps", required=True,
                                           help="file: one gap in seconds a line")
    return parser.parse_args(argv)


def read_gaps(path: str) -> list[float]:
    with open(path) as handle:
        return [float(line) for line in handle if line.strip()]


def batches(count: int) -> list[range]:
    return [range(start, min(start + BATCH, count)) for start in range(0, count, BATCH)]


def emit(seconds: float, count: int, **extra: Any) -> None:
    print(json.dumps({"seconds": seconds, "count": count, **extra}), flush=True)


def main(push_one: PushOne, push_many: PushMany | None = None,
         argv: Sequence[str] | None = None) -> None:
    """The pusher's command line, for a system with a blocking client."""
    args = parse(argv)
    if args.mode == "latency":
        gaps = read_gaps(args.gaps)
        for i, gap in enumerate(gaps):
            time.sleep(gap)  # the worker sits idle for this long first
            push_one(i, time.time())
        emit(0.0, len(gaps))
        return
    # Batches are built before the clock starts: a caller has its arguments already.
    chunks = batches(args.count)
    start = time.perf_counter()
    if args.mode == "bulk" and push_many is not None:
        for chunk in chunks:
            push_many(chunk)
    else:
        for i in range(args.count):
            push_one(i, None)
    emit(time.perf_counter() - start, args.count, bulk_api=push_many is not None)


async def main_async(push_one: Callable[[int, float | None], Awaitable[Any]],
                     argv: Sequence[str] | None = None) -> None:
    """The same for an asyncio client (arq), awaited one push at a time as its docs do."""
    import asyncio

    args = parse(argv)
    if args.mode == "latency":
        gaps = read_gaps(args.gaps)
        for i, gap in enumerate(gaps):
            await asyncio.sleep(gap)
            await push_one(i, time.time())
        emit(0.0, len(gaps))
        return
    start = time.perf_counter()
    for i in range(args.count):
        await push_one(i, None)
    emit(time.perf_counter() - start, args.count, bulk_api=False)
