"""``async def perform``: jobs run on the worker's event loop beside its threads, many at
once, with retries, middleware, the testing modes and pushes from async code. Real Redis,
in-process workers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job, job, middleware, testing
from sidequest.api import RetrySet

ran: list[Any] = []
lock = threading.Lock()


class Fetch(Job):
    async def perform(self, n: int, pause: float = 0.0) -> None:
        await asyncio.sleep(pause)
        with lock:
            ran.append(("async", n, threading.current_thread().name))


class Plain(Job):
    def perform(self, n: int) -> None:
        with lock:
            ran.append(("sync", n, threading.current_thread().name))


class Flaky(Job):
    retry = 1

    async def perform(self) -> None:
        raise ValueError("the API said no")


@job
async def ping(host: str) -> None:
    ran.append(("ping", host, ""))


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    ran.clear()


def test_async_and_sync_jobs_run_side_by_side(r: redis.Redis) -> None:
    assert Fetch.async_perform and not Plain.async_perform
    Fetch.perform_bulk([[i] for i in range(20)])
    Plain.perform_bulk([[i] for i in range(20)])
    ping.perform_async("example.org")
    with running_worker(concurrency=2):
        wait_for(lambda: len(ran) == 41, what="every job")
        wait_for(lambda: r.llen(f"sq:inprogress:{_identity(r)}") == 0,
                 what="every job acknowledged")
    threads = {kind: {name for k, _, name in ran if k == kind} for kind in ("async", "sync")}
    assert threads["async"] == {"sidequest-asyncio"}
    assert "sidequest-asyncio" not in threads["sync"]


def _identity(r: redis.Redis) -> str:
    return next(iter(r.smembers("processes")))


def test_many_sleeping_jobs_run_at_once_not_one_per_thread() -> None:
    Fetch.perform_bulk([[i, 1.0] for i in range(300)])
    started = time.monotonic()
    with running_worker(concurrency=2, async_concurrency=300):
        wait_for(lambda: len(ran) == 300, timeout=20, what="300 one-second async jobs")
    # Two threads running them one at a time would take 150 s.
    assert time.monotonic() - started < 10


def test_a_failing_async_job_retries_like_any_other() -> None:
    jid = Flaky.perform_async()
    with running_worker():
        (entry,) = wait_for(lambda: list(RetrySet()), what="the failure in the retry set")
    assert entry.jid == jid and entry.item["error_class"] == "ValueError"


def test_sync_middleware_still_wraps_an_async_job() -> None:
    seen: list[str] = []

    def around(job: Any, payload: Any, queue: str, call_next: Any) -> Any:
        seen.append("before")
        result = call_next()
        seen.append(f"after {len(ran)}")  # the job has run by then
        return result

    middleware.server.add(around)
    try:
        Fetch.perform_async(1, 0.05)
        with running_worker():
            wait_for(lambda: seen == ["before", "after 1"], what="the middleware around it")
    finally:
        middleware.server.remove(around)


def test_aperform_async_pushes_from_a_running_loop(r: redis.Redis) -> None:
    async def handler() -> list[str | None]:
        return [await Fetch.aperform_async(7), await Fetch.aperform_in(60, 8),
                *(await Fetch.aperform_bulk([[9], [10]]))]

    jids = asyncio.run(handler())
    assert all(jids) and r.llen("queue:default") == 3 and r.zcard("schedule") == 1


def test_set_gives_the_awaitable_pushes_with_its_options(r: redis.Redis) -> None:
    async def handler() -> list[str | None]:
        elsewhere = Fetch.set(queue="elsewhere", retry=False)
        return [await elsewhere.aperform_async(1), await elsewhere.aperform_in(60, 2),
                await elsewhere.aperform_at(time.time() + 60, 3),
                *(await elsewhere.aperform_bulk([[4], [5]])),
                await Fetch.aperform_at(time.time() + 60, 6)]

    jids = asyncio.run(handler())
    assert all(jids) and r.llen("queue:elsewhere") == 3 and r.zcard("schedule") == 3
    queued = [json.loads(raw) for raw in r.lrange("queue:elsewhere", 0, -1)]
    assert {job["retry"] for job in queued} == {False}


def test_the_testing_modes_run_coroutines() -> None:
    with testing.fake():
        Fetch.perform_async(3)
        ping.perform_async("a")
        assert Fetch.drain() == 1 and ping.drain() == 1
    assert [(kind, n) for kind, n, _ in ran] == [("async", 3), ("ping", "a")]
