"""Unique jobs against a real redis-server: one job per identity, however many pushes race;
the lock released at start or on success, on death and on deletion, and kept through a
retry."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import ConfigError, Job, job
from sidequest.api import Queue, ScheduledSet

LOCK = threading.Lock()
RAN: list[tuple[str, Any]] = []
RELEASE = threading.Event()


def record(name: str, value: Any) -> None:
    with LOCK:
        RAN.append((name, value))


def ran(name: str) -> list[Any]:
    with LOCK:
        return [v for n, v in RAN if n == name]


@pytest.fixture(autouse=True)
def _clean() -> None:
    with LOCK:
        RAN.clear()
    RELEASE.clear()


class Sync(Job):
    unique_for = 60

    def perform(self, account: int) -> None:
        record("sync", account)


class SyncHeld(Job):
    """Runs until RELEASE is set, holding its lock until it succeeds (the default)."""

    unique_for = 60

    def perform(self, account: int) -> None:
        record("started", account)
        RELEASE.wait(10)
        record("finished", account)


class SyncHeldStart(SyncHeld):
    unique_until = "start"

    def perform(self, account: int) -> None:
        super().perform(account)


class SyncFails(Job):
    unique_for = 60
    retry = 0  # straight to the dead set

    def perform(self, account: int) -> None:
        raise RuntimeError("no")


class SyncRetries(Job):
    unique_for = 60

    def perform(self, account: int) -> None:
        record("failing", account)
        raise RuntimeError("later")


class ByAccount(Job):
    unique_for = 60

    @classmethod
    def unique_key(cls, account: int, note: str) -> Any:
        return account  # the note does not make a job different

    def perform(self, account: int, note: str) -> None:
        pass


@job(unique_for=60, queue="low")
def refresh(key: str) -> None:
    pass


def locks(r: redis.Redis) -> dict[str, str]:
    return {k: str(r.get(k)) for k in r.scan_iter("sq:unique:*")}


def snapshot(r: redis.Redis) -> dict[str, Any]:
    """Every key with its full value (DUMP) and TTL rounded to seconds."""
    return {k: (r.dump(k), r.ttl(k)) for k in sorted(r.keys("*"))}


def test_fifty_threads_by_a_hundred_pushes_give_one_job(r: redis.Redis) -> None:
    barrier = threading.Barrier(50)
    results: list[str | None] = []

    def pusher() -> None:
        barrier.wait()
        mine = [Sync.perform_async(7) for _ in range(100)]
        with LOCK:
            results.extend(mine)

    threads = [threading.Thread(target=pusher) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 5000
    winners = [jid for jid in results if jid is not None]
    assert len(winners) == 1
    (raw,) = r.lrange("queue:default", 0, -1)
    assert json.loads(raw)["jid"] == winners[0]
    assert list(locks(r).values()) == winners


def test_duplicate_returns_none_and_writes_nothing(r: redis.Redis) -> None:
    jid = Sync.perform_async(1)
    assert jid is not None
    before = snapshot(r)
    assert Sync.perform_async(1) is None
    assert Sync.set(queue="default").perform_async(1) is None
    assert snapshot(r) == before
    # Other arguments, another queue or another class are other jobs.
    assert Sync.perform_async(2) is not None
    assert Sync.set(queue="other").perform_async(1) is not None
    assert SyncFails.perform_async(1) is not None
    assert r.llen("queue:default") == 3 and r.llen("queue:other") == 1
    assert len(locks(r)) == 4


def test_lock_holds_the_jid_and_lives_unique_for(r: redis.Redis) -> None:
    jid = Sync.perform_async(1)
    payload = json.loads(r.lrange("queue:default", 0, -1)[0])
    entry = payload["sq_unique"]
    assert entry["for"] == 60 and entry["until"] == "success"
    assert "unique_for" not in payload and "unique_until" not in payload
    assert r.get(f"sq:unique:{entry['key']}") == jid
    assert 59_000 < r.pttl(f"sq:unique:{entry['key']}") <= 60_000


def test_scheduled_pushes_are_unique_by_run_time(r: redis.Redis) -> None:
    at = time.time() + 300
    first = Sync.perform_at(at, 1)
    assert first is not None
    assert Sync.perform_at(at, 1) is None
    assert Sync.perform_at(at + 60, 1) is not None  # another run time: another job
    assert Sync.perform_async(1) is not None  # now is not the scheduled run
    assert r.zcard("schedule") == 2
    (lock,) = [k for k, v in locks(r).items() if v == first]
    # The lock outlives the wait until the run time by unique_for.
    assert 355_000 < r.pttl(lock) <= 360_000


def test_unique_key_hook_function_jobs_and_set(r: redis.Redis) -> None:
    assert ByAccount.perform_async(5, "first") is not None
    assert ByAccount.perform_async(5, "second") is None
    assert ByAccount.perform_async(6, "first") is not None
    assert refresh.perform_async("home") is not None
    assert refresh.perform_async("home") is None
    assert refresh.set(unique_for=None).perform_async("home") is not None  # opted out
    assert Sync.set(unique_for=5, unique_until="start").perform_async(9) is not None
    entry = json.loads(r.lrange("queue:default", 0, 0)[0])["sq_unique"]
    assert entry["for"] == 5 and entry["until"] == "start"


def test_bulk_respects_uniqueness(r: redis.Redis) -> None:
    assert Sync.perform_async(3) is not None
    jids = Sync.perform_bulk([[1], [2], [1], [3], [2]])
    assert [j is not None for j in jids] == [True, True, False, False, False]
    assert r.llen("queue:default") == 3


def test_bad_options_are_refused_at_definition(r: redis.Redis) -> None:
    with pytest.raises(ConfigError, match="unique_until"):
        Sync.set(unique_until="finish")
    with pytest.raises(ConfigError, match="unique_for"):
        class Bad(Job):
            unique_for = -1

            def perform(self) -> None:
                pass
    with pytest.raises(TypeError, match="unique_key must return JSON"):
        class Odd(Job):
            name = "Odd"  # defined in a function: a name makes it pushable
            unique_for = 10

            @classmethod
            def unique_key(cls, *args: Any) -> Any:
                return object()

            def perform(self) -> None:
                pass
        Odd.perform_async()
    assert r.dbsize() == 0


def test_released_on_success_not_before(r: redis.Redis) -> None:
    jid = SyncHeld.perform_async(1)
    with running_worker(concurrency=2):
        wait_for(lambda: ran("started") == [1], what="the job to start")
        assert SyncHeld.perform_async(1) is None  # running: still locked
        assert list(locks(r).values()) == [jid]
        RELEASE.set()
        wait_for(lambda: not locks(r), what="the lock released on success")
        again = SyncHeld.perform_async(1)
        assert again is not None and again != jid
        wait_for(lambda: ran("finished") == [1, 1], what="the second run")


def test_released_at_start(r: redis.Redis) -> None:
    SyncHeldStart.perform_async(1)
    with running_worker(concurrency=2):
        wait_for(lambda: ran("started") == [1], what="the job to start")
        # Started: the lock is gone while the job still runs.
        assert not locks(r)
        assert SyncHeldStart.perform_async(1) is not None
        RELEASE.set()
        wait_for(lambda: ran("finished") == [1, 1], what="both runs")


def test_kept_through_a_retry_released_at_death(r: redis.Redis) -> None:
    retrying = SyncRetries.perform_async(1)
    dying = SyncFails.perform_async(1)
    with running_worker(concurrency=2):
        wait_for(lambda: r.zcard("retry") == 1 and r.zcard("dead") == 1, what="retry and dead")
        wait_for(lambda: list(locks(r).values()) == [retrying], what="the dead job's lock gone")
    assert SyncRetries.perform_async(1) is None
    assert SyncFails.perform_async(1) not in (None, dying)


def test_released_when_deleted_through_the_api(r: redis.Redis) -> None:
    queued = Sync.perform_async(1)
    scheduled = Sync.perform_in(600, 2)
    assert len(locks(r)) == 2
    record_ = Queue("default").find_job(str(queued))
    assert record_ is not None and record_.delete()
    entry = ScheduledSet().find_job(str(scheduled))
    assert entry is not None and entry.delete()
    assert not locks(r)
    assert Sync.perform_async(1) is not None


def test_a_lock_taken_over_after_expiry_is_not_released_by_the_old_job(
    r: redis.Redis,
) -> None:
    old = Sync.perform_async(1)
    (lock,) = locks(r)
    r.set(lock, "someone-else")  # as if the TTL ran out and another push took the lock
    record_ = Queue("default").find_job(str(old))
    assert record_ is not None and record_.delete()
    assert r.get(lock) == "someone-else"


def test_released_by_kill_all_but_left_to_expire_by_clear(r: redis.Redis) -> None:
    from sidequest.api import RetrySet

    for account in (1, 2):
        Sync.perform_in(600, account)
    moved = ScheduledSet().add_all_to_queue()  # into the queue, locks kept
    assert moved == 2 and len(locks(r)) == 2
    for raw in r.lrange("queue:default", 0, -1):
        r.zadd("retry", {raw: time.time() + 600})
    r.delete("queue:default")
    assert RetrySet().kill_all() == 2
    assert not locks(r) and r.zcard("dead") == 2
    Sync.perform_in(600, 3)
    ScheduledSet().clear()  # a whole set at once: its locks expire after unique_for
    assert len(locks(r)) == 1


def test_enqueue_by_name_is_unique_too(r: redis.Redis) -> None:
    from sidequest import enqueue

    first = enqueue("RubyJob", 1, unique_for=60)
    assert first is not None
    assert enqueue("RubyJob", 1, unique_for=60) is None
    assert enqueue("RubyJob", 1, queue="other", unique_for=60) is not None
    assert enqueue("RubyJob", 1) is not None  # without the option: not unique
    assert r.llen("queue:default") == 2 and r.llen("queue:other") == 1


def test_released_when_deleted_as_the_dashboard_does(r: redis.Redis) -> None:
    from sidequest.api.queues import digest_of

    Sync.perform_async(1)
    Sync.perform_async(2)
    raw = r.lrange("queue:default", 0, 0)[0]
    assert Queue("default").delete_by_reference(0, digest_of(raw.encode()))
    assert len(locks(r)) == 1
    assert Sync.perform_async(2) is not None  # the newest (args [2]) was the one deleted
    assert Sync.perform_async(1) is None
