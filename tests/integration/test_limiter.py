"""Rate limiters across processes, on a real Redis: a bucket and a sliding window allow
exactly their limit, a concurrent limiter is never exceeded and gets back the slots of a
SIGKILLed holder (never those of a live one), idle state expires, OverLimit out of
``perform`` reschedules the job without using a retry, and another process's limiter of
another kind under the same name is a clear error."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis

import sidequest
from apps.limiter_load import run_load, stamps_of
from helpers import running_worker, wait_for
from sidequest import Job, OverLimit, hooks, keys, limiter
from sidequest.api import DeadSet, JobStatus, RetrySet, ScheduledSet, Stats
from sidequest.monitor import render_stats


def test_bucket_allows_its_limit_per_interval_across_processes(redis_url: str) -> None:
    procs = [run_load(redis_url, "bucket", "api", 10, 1, 5, 4) for _ in range(3)]
    stamps = stamps_of(procs)
    per_second = Counter(stamp // 1000 for stamp in stamps)
    assert max(per_second.values()) == 10, per_second  # full, never over
    inner = [count for second, count in per_second.items()
             if min(per_second) < second < max(per_second)]
    assert inner and all(count == 10 for count in inner), per_second


def test_window_allows_its_limit_in_any_sliding_interval(redis_url: str) -> None:
    procs = [run_load(redis_url, "window", "sms", 10, 1, 5, 3) for _ in range(3)]
    stamps = stamps_of(procs)
    # Any 10 consecutive calls past the first 10 span at least the interval.
    assert len(stamps) >= 30
    assert all(stamps[i + 10] - stamps[i] >= 1000 for i in range(len(stamps) - 10))


def test_concurrent_limit_is_never_exceeded(redis_url: str, r: redis.Redis) -> None:
    procs = [run_load(redis_url, "concurrent", "stripe", 5, 5, 6, 3, 0.02) for _ in range(2)]
    seen: list[int] = []
    while any(proc.poll() is None for proc in procs):
        seen.append(int(r.zcard(keys.limiter("stripe"))))
        time.sleep(0.01)
    stamps_of(procs)
    assert max(seen) == 5 and len(seen) > 100, "full at times, never over"


def test_a_killed_holder_loses_its_slots_after_lock_timeout_a_live_one_never(
    redis_url: str,
) -> None:
    holder = run_load(redis_url, "concurrent", "db", 2, 1, 2, 30, 30)  # holds for 30 s
    stripe = limiter.concurrent("db", 2, lock_timeout=1)
    wait_for(lambda: _full(stripe), what="the holder to take both slots")
    deadline = time.monotonic() + 2.5  # more than twice the lock timeout
    while time.monotonic() < deadline:  # alive: its slots are renewed
        with pytest.raises(OverLimit):
            stripe.acquire()
        time.sleep(0.1)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    killed = time.monotonic()
    wait_for(lambda: not _full(stripe), timeout=3, what="the dead holder's slots to lapse")
    assert time.monotonic() - killed <= 1.5


def _full(made: limiter.ConcurrentLimiter) -> bool:
    try:
        made.acquire()
    except OverLimit:
        return True
    made.release()
    return False


@pytest.mark.slow  # a load test: run once, not on every Python
def test_idle_state_of_many_dynamic_names_expires(r: redis.Redis) -> None:
    # More names than the registry keeps (10,000), but few enough that one call each fits
    # the timeout on a busy 2-core machine.
    for uid in range(12_000):
        limiter.bucket(f"user-{uid}", 10, 0.2).acquire()
    assert r.exists(keys.limiter("user-11999"))
    # The registry of names in use (for the dashboard) is bounded and lapses too.
    assert r.zcard(keys.LIMITERS) == 10_000 and 0 < r.pttl(keys.LIMITERS) <= 3_600_000
    wait_for(lambda: not list(r.scan_iter(match="sq:limiter:*", count=10_000)), timeout=10,
             what="every limiter's state to expire")


class Charge(Job):
    held = limiter.concurrent("gateway", 1, lock_timeout=30)

    def perform(self, order: int) -> None:
        with Charge.held:
            pass


def test_over_limit_reschedules_without_a_retry_then_dies(
    redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = limiter.concurrent("gateway", 1, lock_timeout=30)
    taken = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with blocker:
            taken.set()
            release.wait(20)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(5)
    try:
        jid = Charge.perform_async(1)
        with running_worker():
            (entry,) = wait_for(lambda: list(ScheduledSet()), what="the job to be rescheduled")
        assert entry.jid == jid and entry.item["overlimit_count"] == 1
        assert "retry_count" not in entry.item and RetrySet().size == 0
        assert entry.at - time.time() > 3, "a delay, not a hot loop"
        # The first step (5 s plus jitter), not the 30 s lease: the holder renews it while
        # it lives, and the slot frees whenever it leaves its block.
        assert entry.at - time.time() < 8, entry.at - time.time()
        assert entry.item.get("error_message") is None
        assert r.get(keys.STAT_OVERLIMIT) == "1" and r.get(keys.limiter_over("gateway")) == "1"
        assert Stats().overlimit == 1 and "Over limit: 1" in render_stats()[1]
        monkeypatch.setattr(limiter, "max_reschedules", 1)
        assert entry.add_to_queue()
        with running_worker():
            wait_for(lambda: DeadSet().size == 1, what="the job to die after its reschedules")
        (dead,) = list(DeadSet())
        assert dead.item["error_class"] == "OverLimit" and ScheduledSet().size == 0
    finally:
        release.set()
        holder.join()


class StoredCharge(Job):
    store_result = True
    unique_for = 600
    held = limiter.concurrent("gateway", 1, lock_timeout=30)

    def perform(self, order: int) -> None:
        with StoredCharge.held:
            pass


class DroppedCharge(StoredCharge):
    dead = False


def test_death_by_over_limit_is_a_death_like_any_other(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its death handlers run: the unique lock is freed, the stored status says dead, the
    application hears of it; a class with ``dead = False`` is dropped, not kept."""
    heard: list[tuple[str, str]] = []

    def handler(job: dict[str, object], exc: BaseException) -> None:
        heard.append((str(job["jid"]), type(exc).__name__))

    monkeypatch.setattr(limiter, "max_reschedules", 0)
    monkeypatch.setattr(hooks, "death_handlers", [handler])
    blocker = limiter.concurrent("gateway", 1, lock_timeout=30)
    blocker.acquire()
    try:
        kept, dropped = StoredCharge.perform_async(1), DroppedCharge.perform_async(2)
        assert kept and dropped and len(list(r.scan_iter(match="sq:unique:*"))) == 2
        with running_worker():
            wait_for(lambda: len(heard) == 2, what="both deaths to be reported")
    finally:
        blocker.release()
    assert sorted(heard) == sorted([(kept, "OverLimit"), (dropped, "OverLimit")])
    assert [entry.jid for entry in DeadSet()] == [kept] and ScheduledSet().size == 0
    assert JobStatus(kept).state == "dead" and JobStatus(dropped).state == "dead"
    assert not list(r.scan_iter(match="sq:unique:*")), "the unique locks are freed"


def test_a_short_lock_timeout_held_beside_a_long_one_is_renewed_in_time(r: redis.Redis) -> None:
    """The renewing thread naps a third of the shortest lock timeout it knows; a slot with a
    shorter one, taken during a long nap, wakes it rather than lapse while its holder lives."""
    slow = limiter.concurrent("slow-api", 1, lock_timeout=60)
    fast = limiter.concurrent("fast-api", 1, lock_timeout=0.6)
    with slow:
        time.sleep(0.2)  # lets the renewing thread start its 20 s nap (the case to test)
        with fast:
            deadline = time.monotonic() + 2  # over three lock timeouts
            while time.monotonic() < deadline:
                assert _full(limiter.concurrent("fast-api", 1, lock_timeout=0.6))
                time.sleep(0.05)


def _hold_in_child(url: str, taken: Any, done: Any) -> None:
    sidequest.configure(redis_url=url)
    with limiter.concurrent("forked", 1, lock_timeout=0.6):
        taken.set()
        done.wait(10)


# Forking with the renewing thread running is the point; Python 3.12+ warns of any such fork.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_renews_its_own_slots(redis_url: str) -> None:
    """A process forked after its parent took a slot (the renewing thread running) gets a
    renewing thread of its own: its slot outlives the lock timeout while it holds it."""
    with limiter.concurrent("parent", 1, lock_timeout=60):  # the parent's thread runs
        fork = multiprocessing.get_context("fork")
        taken, done = fork.Event(), fork.Event()
        child = fork.Process(target=_hold_in_child, args=(redis_url, taken, done))
        child.start()
        try:
            assert taken.wait(10), "the child took its slot"
            deadline = time.monotonic() + 2  # over three lock timeouts
            while time.monotonic() < deadline:
                assert _full(limiter.concurrent("forked", 1, lock_timeout=0.6))
                time.sleep(0.05)
        finally:
            done.set()
            child.join(10)
    assert child.exitcode == 0


def test_another_process_limiter_of_another_kind_on_the_same_name_is_named(
    redis_url: str, r: redis.Redis
) -> None:
    """Every kind keeps its state under ``sq:limiter:<name>``: a bucket's hash under the name
    of this process's concurrent or window limiter (or their sorted set under a bucket's
    name) is a clear error naming the limiter and what to do, not Redis's WRONGTYPE."""
    stamps_of([run_load(redis_url, "bucket", "mixed", 1, 60, 1, 0.2)])  # another process
    assert r.type(keys.limiter("mixed")) == "hash"
    mine = limiter.concurrent("mixed", 1)
    with pytest.raises(limiter.LimiterConflict) as raised:
        mine.acquire()
    text = str(raised.value)
    assert f"limiter 'mixed' ({mine.definition}, {__file__}:" in text
    assert "holds the state of a bucket limiter of the same name" in text
    assert "rename one of them" in text
    stamps_of([run_load(redis_url, "window", "mixed-too", 1, 60, 1, 0.2)])
    bucket = limiter.bucket("mixed-too", 1, "minute")
    with pytest.raises(limiter.LimiterConflict, match="a concurrent or window limiter"):
        bucket.acquire()

    async def in_async_code() -> None:
        async with bucket:
            pass

    with pytest.raises(limiter.LimiterConflict, match="'mixed-too'"):
        asyncio.run(in_async_code())
