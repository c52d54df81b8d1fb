"""Rate limiters across processes, on a real Redis: a bucket and a sliding window allow
exactly their limit, a concurrent limiter is never exceeded and gets back the slots of a
SIGKILLed holder (never those of a live one), idle state expires, OverLimit out of
``perform`` reschedules the job without using a retry, another process's limiter of
another kind under the same name is a clear error, and so is a ``with`` on a concurrent
limiter inside another on the same one when the job holds every slot (it would wait for
itself)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

import sidequest
from apps.limiter_load import run_load, stamps_of
from helpers import FAST, running_worker, wait_for
from sidequest import Job, OverLimit, connection, hooks, keys, limiter
from sidequest import limiter_renewal as renewal
from sidequest.api import DeadSet, JobStatus, RetrySet, ScheduledSet, Stats
from sidequest.config import build
from sidequest.monitor import render_stats
from sidequest.worker.reaper import Reaper


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
        (pushed,) = [json.loads(raw) for raw in r.lrange(keys.queue(Charge.queue), 0, -1)]
        with running_worker():
            (entry,) = wait_for(lambda: list(ScheduledSet()), what="the job to be rescheduled")
        assert entry.jid == jid and entry.item["overlimit_count"] == 1
        # Kept: a whole-set move that sent it to its queue tells by it that it came back.
        assert entry.item["enqueued_at"] == pushed["enqueued_at"]
        assert entry.item["overlimit_name"] == "gateway", entry.item
        assert "retry_count" not in entry.item and RetrySet().size == 0
        assert entry.at - time.time() > 3, "a delay, not a hot loop"
        # The first step (5 s plus jitter), not the 30 s lease: the holder renews it while
        # it lives, and the slot frees whenever it leaves its block.
        assert entry.at - time.time() < 8, entry.at - time.time()
        assert entry.item.get("error_message") is None
        assert r.get(keys.STAT_OVERLIMIT) == "1"
        assert r.get(keys.limiter_over("gateway", keys.over_span(time.time()))) == "1"
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
                assert _full_elsewhere(limiter.concurrent("fast-api", 1, lock_timeout=0.6))
                time.sleep(0.05)


def test_a_slot_that_lapsed_while_its_job_ran_is_counted_again(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """Redis away for longer than the lock timeout: the holder cannot renew, an acquire drops
    its slot and another job takes it. Renewing only what is left, the limiter went on
    admitting jobs beside the holder for as long as it ran; it must count it again."""
    made = limiter.concurrent("lapsing", 1, lock_timeout=0.6)
    with caplog.at_level("WARNING", "sidequest"), made:
        (token,) = r.zrange(made.key, 0, -1)
        r.zrem(made.key, token)  # what an acquire does to a slot past its expiry
        # The lapsed slot went to another process's job meanwhile (it holds it a minute).
        r.zadd(made.key, {"another-process": (time.time() + 60) * 1000})
        try:
            wait_for(lambda: token in r.zrange(made.key, 0, -1), 10, "the slot counted again")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {_renewer_state(r, made.key)}") from None
        assert _full_elsewhere(limiter.concurrent("lapsing", 1, lock_timeout=0.6))
    r.zrem(made.key, "another-process")
    assert any("lapsing" in rec.getMessage() and "more than its limit" in rec.getMessage()
               for rec in caplog.records)


def _renewer_state(r: redis.Redis, key: str) -> str:
    """What the renewing thread and the limiter's key hold: why a slot was not renewed."""
    held = renewal.renewer
    thread = held._thread
    return (f"renewing thread {'alive' if thread and thread.is_alive() else thread}, "
            f"period {held._period} s, woken {held._wake.is_set()}, holds "
            f"{ {lim.name: tokens for lim, tokens in held._held.items()} }; "
            f"{key} = {r.zrange(key, 0, -1, withscores=True)}, Redis time {r.time()}")


def _full_elsewhere(made: limiter.ConcurrentLimiter) -> bool:
    """``_full`` asked by another thread, as another job would: this one holds the slot, so
    its own acquire would be refused as waiting for itself."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_full, made).result(10)


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


def test_a_nested_with_on_the_same_concurrent_limiter_is_refused_at_once(r: redis.Redis) -> None:
    """The inner ``with`` would wait for the slot its own job holds: until wait_timeout, then
    at every reschedule, the job dying after the last one with a message blaming another
    holder. Refused at once instead, naming the limiter; the outer slot stays held."""
    one = limiter.concurrent("nested-one", 1, wait_timeout=2)
    started = time.monotonic()
    with one:
        with pytest.raises(RuntimeError) as raised, one:
            pass
        assert r.zcard(keys.limiter("nested-one")) == 1, "the outer slot is still held"
    assert time.monotonic() - started < 1, "at once, not after wait_timeout"
    message = str(raised.value)
    assert "limiter 'nested-one' is already held by this same job" in message
    assert "which holds its only slot" in message
    assert "Hold it once, around the whole block" in message
    assert r.zcard(keys.limiter("nested-one")) == 0, "given back by the outer block"
    one.acquire()  # acquire() twice is the same mistake, and so is another object of the name
    try:
        with pytest.raises(RuntimeError, match="'nested-one' is already held"):
            one.acquire()
        with pytest.raises(RuntimeError, match="'nested-one' is already held"):
            limiter.concurrent("nested-one", 1).acquire()
    finally:
        one.release()
    assert r.zcard(keys.limiter("nested-one")) == 0


def test_a_job_may_take_several_slots_of_one_limiter_but_not_more_than_it_has(
    r: redis.Redis,
) -> None:
    """Two slots of a limiter of two, taken by one thread (a heavy call counted twice): as
    before. A third would wait for the job itself: refused at once."""
    pair = limiter.concurrent("nested-pair", 2, wait_timeout=2)
    started = time.monotonic()
    with pair, pair:
        assert r.zcard(keys.limiter("nested-pair")) == 2
        with pytest.raises(RuntimeError, match="which holds all 2 of its slots"), pair:
            pass
    assert time.monotonic() - started < 1, "at once, not after wait_timeout"
    assert r.zcard(keys.limiter("nested-pair")) == 0


def test_what_nests_or_repeats_legitimately_still_works(r: redis.Redis) -> None:
    """Two limiters nested, a rate limiter taken twice, one limiter used block after block,
    and one limiter held at once by two jobs (threads) of the same process."""
    first, second = limiter.concurrent("nest-a", 1), limiter.concurrent("nest-b", 1)
    rate = limiter.bucket("nest-rate", 10, "minute")
    with first, second, rate, rate:
        pass
    for _ in range(3):
        with first:
            pass
    pair = limiter.concurrent("nest-pair", 2)
    both_in = threading.Barrier(3, timeout=5)
    errors: list[BaseException] = []

    def job() -> None:
        try:
            with pair:
                both_in.wait()  # each holds its slot while the other takes its own
                both_in.wait()
        except BaseException as exc:  # reported by the test, in its own thread
            errors.append(exc)

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    both_in.wait()
    assert r.zcard(keys.limiter("nest-pair")) == 2
    both_in.wait()
    for thread in threads:
        thread.join(5)
    assert not errors and r.zcard(keys.limiter("nest-pair")) == 0
    with first:  # held by another job (thread): a full limiter, not re-entry
        other = threading.Thread(target=_enter, args=(first, errors))
        other.start()
        other.join(5)
    assert [type(exc) for exc in errors] == [OverLimit]


def _enter(made: limiter.Limiter, errors: list[BaseException]) -> None:
    try:
        with made:
            pass
    except BaseException as exc:  # reported by the test, in its own thread
        errors.append(exc)


class Nested(Job):
    retry = 1
    one = limiter.concurrent("nested-job", 1, wait_timeout=2)

    def perform(self) -> None:
        with Nested.one, Nested.one:
            pass


def test_a_job_that_nests_one_limiter_fails_at_once_instead_of_rescheduling(
    r: redis.Redis,
) -> None:
    jid = Nested.perform_async()
    with running_worker():
        (entry,) = wait_for(lambda: list(RetrySet()), timeout=5, what="the job's failure")
    assert entry.jid == jid and entry.item["error_class"] == "RuntimeError"
    assert "'nested-job' is already held by this same job" in entry.item["error_message"]
    assert ScheduledSet().size == 0 and Stats().overlimit == 0
    assert r.zcard(keys.limiter("nested-job")) == 0, "its slot was given back"


LEAKY = limiter.concurrent("leaky", 1, wait_timeout=0)
LEAK_RESULTS: list[str] = []


class LeavesItsSlot(Job):
    retry = False

    def perform(self) -> None:
        LEAKY.acquire()
        raise ValueError("raised before release()")


class UsesTheSlot(Job):
    def perform(self) -> None:
        with LEAKY:
            LEAK_RESULTS.append("ran")


def test_a_slot_a_job_left_held_is_given_back_when_it_ends(r: redis.Redis) -> None:
    # acquire() and a raise before release(): the next job of the same thread must get the
    # slot, not be refused as holding it (nor the slot be renewed while the process lives).
    LEAK_RESULTS.clear()
    with running_worker(concurrency=1):
        LeavesItsSlot.perform_async()
        wait_for(lambda: r.get("stat:failed") == "1", what="the leaking job to fail")
        assert r.zcard(keys.limiter("leaky")) == 0
        UsesTheSlot.perform_async()
        wait_for(lambda: LEAK_RESULTS == ["ran"], what="the next job to take the slot")


def test_the_slots_of_a_process_known_dead_are_freed_at_once(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A -P child killed with kill -9 is replaced at once and its jobs recovered at once, but
    its slots stayed taken until their lock timeout (9.6-9.9 s measured with a 10 s one),
    the limiter running short meanwhile."""
    partner = limiter.concurrent("slots-of-the-dead", 3, lock_timeout=60)
    monkeypatch.setattr(renewal, "owner", "dead:1:aaaaaaaaaaaa")
    partner.acquire()  # as the dead process took it
    monkeypatch.setattr(renewal, "owner", "live:2:bbbbbbbbbbbb")
    partner.acquire()
    tokens = r.zrange(keys.limiter("slots-of-the-dead"), 0, -1)
    (live,) = [t for t in tokens if t.startswith("live:2:bbbbbbbbbbbb|")]
    assert len(tokens) == 2
    try:
        with running_worker() as worker:
            worker.reaper.recover_gone("dead:1:aaaaaaaaaaaa")
            # The live process's slot is left to it, the dead one's freed.
            assert r.zrange(keys.limiter("slots-of-the-dead"), 0, -1) == [live]
    finally:
        partner.release()
        partner.release()


def test_a_process_whose_lease_only_lapsed_keeps_its_slots(
        r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lapsed lease may be a paused or cut-off process, still alive: its jobs are recovered,
    but its slots stay until their lock timeout, or on resuming it would hold slots given to
    others (its renewer writes back the ones it finds gone)."""
    paused = limiter.concurrent("slots-of-the-paused", 3, lock_timeout=60)
    monkeypatch.setattr(renewal, "owner", "paused:1:aaaaaaaaaaaa")
    paused.acquire()
    r.sadd(keys.SQ_PROCESSES, "paused:1:aaaaaaaaaaaa")  # listed, and its lease gone
    r.set(keys.lease("judge:2:bbbbbbbbbbbb"), 1, ex=60)
    try:
        Reaper(build(**FAST), "judge:2:bbbbbbbbbbbb", connection.client(), threading.Event()).reap()
        assert not r.sismember(keys.SQ_PROCESSES, "paused:1:aaaaaaaaaaaa"), "not reaped"
        assert r.zcard(keys.limiter("slots-of-the-paused")) == 1
    finally:
        paused.release()
