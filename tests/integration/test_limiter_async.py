"""Rate limiters in ``async def perform`` jobs, on a real Redis and an in-process worker:
``async with`` waits without blocking the event loop (the slot's holder and unrelated async
jobs run meanwhile), each asyncio task gives back its own slot, a cancelled holder (or a task
cancelled mid-acquire) leaves no slot taken, OverLimit reschedules the job as it does from
``with``, and a plain ``with`` in async code is refused with an error that says what to use,
as is an ``async with`` inside another on the same concurrent limiter."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job, OverLimit, keys, limiter
from sidequest.api import RetrySet, ScheduledSet

sms = limiter.window("async-sms", 1, "second", wait_timeout=5)
slot = limiter.concurrent("async-slot", 1, wait_timeout=3)
full = limiter.window("async-full", 1, "hour", wait_timeout=0.2)

#: (what, when): written by the jobs on the loop, read by the test's thread.
events: list[tuple[str, float]] = []
lock = threading.Lock()


def _note(what: str) -> None:
    with lock:
        events.append((what, time.monotonic()))


def _times(what: str) -> list[float]:
    with lock:
        return [at for name, at in events if name == what]


class Text(Job):
    async def perform(self) -> None:
        async with sms:
            _note("text")


class Hold(Job):
    async def perform(self) -> None:
        async with slot:
            _note("hold-in")
            await asyncio.sleep(0.3)
            _note("hold-out")


class Tick(Job):
    """Unrelated to any limiter: it needs the loop to turn a few times."""

    async def perform(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0.02)
        _note("tick")


class OverFull(Job):
    async def perform(self) -> None:
        async with full:
            _note("over-full")


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    events.clear()


def test_async_with_waits_without_blocking_the_loop() -> None:
    """The walkthrough's jobs: a window of 1 a second in 4 jobs, a concurrent slot of 1 held
    across an await in 3. Waits that block the loop starve the slot's holder (the others
    time out) and stall every other async job."""
    Text.perform_bulk([[] for _ in range(4)])
    Hold.perform_bulk([[] for _ in range(3)])
    Tick.perform_async()
    with running_worker(async_concurrency=20):
        wait_for(lambda: len(_times("text")) == 4 and len(_times("hold-out")) == 3,
                 timeout=15, what="four texts and three holds")
    assert ScheduledSet().size == 0 and RetrySet().size == 0, "none over limit, none failed"
    ins, outs = _times("hold-in"), _times("hold-out")
    assert all(outs[i] <= ins[i + 1] for i in range(2)), "one holder at a time"
    # The fourth text waits 3 s for its second; the unrelated job ran long before.
    (tick,) = _times("tick")
    assert tick < max(_times("text"))


def test_each_task_gives_back_its_own_slot(r: redis.Redis) -> None:
    """Two tasks on one loop (one thread) hold a slot each; the first to leave gives back its
    own, not the one taken last in that thread."""
    pair = limiter.concurrent("async-pair", 2)

    def tokens() -> set[str]:
        return {str(token) for token in r.zrange(keys.limiter("async-pair"), 0, -1)}

    async def main() -> tuple[set[str], set[str], set[str]]:
        first_in, second_in, first_out = asyncio.Event(), asyncio.Event(), asyncio.Event()
        seen: dict[str, set[str]] = {}

        async def first() -> None:
            async with pair:
                seen["first"] = await asyncio.to_thread(tokens)
                first_in.set()
                await second_in.wait()
            first_out.set()

        async def second() -> None:
            await first_in.wait()
            async with pair:
                seen["both"] = await asyncio.to_thread(tokens)
                second_in.set()
                await first_out.wait()
                seen["left"] = await asyncio.to_thread(tokens)

        await asyncio.gather(first(), second())
        return seen["first"], seen["both"], seen["left"]

    mine, both, left = asyncio.run(main())
    assert len(mine) == 1 and len(both) == 2
    assert left == both - mine, "the second task still holds its own slot"
    assert tokens() == set()


def test_a_cancelled_holder_gives_its_slot_back(r: redis.Redis) -> None:
    """A job cancelled inside ``async with`` (its timeout, a stop) leaves the block: the slot
    is free at once, not at the end of its lock timeout."""
    one = limiter.concurrent("async-cancelled", 1, lock_timeout=60)

    async def main() -> None:
        inside = asyncio.Event()

        async def hold() -> None:
            async with one:
                inside.set()
                await asyncio.sleep(60)

        holder = asyncio.create_task(hold())
        await inside.wait()
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        async with one:  # wait_timeout 0: free now, or OverLimit
            pass

    asyncio.run(main())
    assert r.zcard(keys.limiter("async-cancelled")) == 0


def test_a_task_cancelled_while_its_acquire_is_in_flight_leaves_no_slot_taken(
    r: redis.Redis,
) -> None:
    """The Redis call runs in a thread, which a cancellation cannot stop: the slot it takes
    after the task is gone is given back, not left taken until its lock timeout."""
    one = limiter.concurrent("async-in-flight", 1, lock_timeout=60)

    async def main() -> None:
        r.client_pause(5000, all=False)  # write commands (the acquire's script) wait
        try:
            task = asyncio.create_task(one.aacquire())
            await asyncio.to_thread(wait_for, lambda: r.info("clients")["blocked_clients"],
                                    what="the acquire to wait on the paused Redis")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            r.client_unpause()
        await asyncio.to_thread(wait_for, lambda: r.exists(keys.LIMITERS),
                                what="the acquire's script to run")
        await asyncio.to_thread(wait_for, lambda: r.zcard(keys.limiter("async-in-flight")) == 0,
                                timeout=5, what="the orphan slot to be given back")

    asyncio.run(main())


def test_over_limit_from_async_with_reschedules_the_job() -> None:
    full.acquire()  # the one call of the hour
    jid = OverFull.perform_async()
    with running_worker():
        (entry,) = wait_for(lambda: list(ScheduledSet()), what="the job to be rescheduled")
    assert entry.jid == jid and entry.item["overlimit_count"] == 1
    assert RetrySet().size == 0 and not _times("over-full")


class BlocksTheLoop(Job):
    """A plain ``with`` in an async job: on the worker's event loop it would freeze every
    async job while it waits."""

    retry = 1

    async def perform(self) -> None:
        with limiter.concurrent("async-refused", 1):
            pass


def test_plain_with_in_an_async_job_is_refused_and_says_what_to_use(r: redis.Redis) -> None:
    """Refused on the worker's loop; from a thread of asyncio.to_thread, or on a loop of the
    application's own (a notebook, a browser-driving test tool), it is the caller's call."""
    jid = BlocksTheLoop.perform_async()
    with running_worker():
        (entry,) = wait_for(lambda: list(RetrySet()), what="the refused job's failure")
    assert entry.jid == jid and entry.item["error_class"] == "RuntimeError"
    message = entry.item["error_message"]
    assert "'async-refused'" in message and "use `async with`" in message
    assert not r.exists(keys.limiter("async-refused")), "nothing was taken"
    alone = limiter.concurrent("async-refused", 1)

    def in_a_thread() -> int:
        with alone:
            return 1

    async def own_loop() -> int:
        with alone:
            pass
        return await asyncio.to_thread(in_a_thread)

    assert asyncio.run(own_loop()) == 1


def test_a_wait_past_wait_timeout_raises_over_limit_in_async_code() -> None:
    """The same OverLimit as ``with``: after about ``wait_timeout``. A concurrent limiter
    cannot tell when a slot frees (its holder's lease is renewed until it leaves)."""
    busy = limiter.concurrent("async-busy", 1, lock_timeout=30, wait_timeout=0.3)
    busy.acquire()
    try:
        async def main() -> float:
            started = time.monotonic()
            with pytest.raises(OverLimit) as raised:
                async with busy:
                    pass
            assert raised.value.name == "async-busy" and raised.value.retry_in == 0
            assert "its one slot is held; a slot frees when its holder leaves" in str(raised.value)
            return time.monotonic() - started

        assert 0.3 <= asyncio.run(main()) < 3
    finally:
        busy.release()


def test_a_nested_async_with_on_the_same_concurrent_limiter_is_refused_at_once(
    r: redis.Redis,
) -> None:
    """As with ``with``: the inner block would wait for its own task's slot. Other tasks are
    other holders, even one started inside the block (its context a copy of the block's):
    one that enters once the block has ended, two of the loop that hold a slot each."""
    one = limiter.concurrent("async-nested", 1, wait_timeout=2)
    pair = limiter.concurrent("async-nested-pair", 2)

    async def after_the_block() -> None:
        async with one:
            pass

    async def main() -> None:
        async with one:
            with pytest.raises(RuntimeError, match="'async-nested' is already held by this"):
                async with one:
                    pass
            assert await asyncio.to_thread(r.zcard, keys.limiter("async-nested")) == 1
            later = asyncio.ensure_future(after_the_block())
        await later  # it waited for the slot, and took it once the block gave it back
        async with one:  # block after block
            pass
        held: list[int] = []
        both_in = asyncio.Event()  # not asyncio.Barrier: Python 3.10 has none

        async def job() -> None:
            async with pair:
                held.append(1)
                if len(held) == 2:
                    both_in.set()
                await both_in.wait()  # each holds its slot while the other takes its own

        await asyncio.wait_for(asyncio.gather(job(), job()), 5)

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 1.5, "at once, not after wait_timeout"
    assert r.zcard(keys.limiter("async-nested")) == 0
    assert r.zcard(keys.limiter("async-nested-pair")) == 0
