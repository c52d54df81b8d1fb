"""Unique jobs (``unique_for``): an identical push while the job is queued, scheduled or
running writes nothing and returns None; the lock goes at start or success, at death, and
when the job is deleted; its TTL is the safety net. Real Redis, in-process workers."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job, job, keys
from sidequest.api import DeadSet, Queue, ScheduledSet, cancel
from sidequest.errors import ConfigError
from sidequest.payload import dumps

ran: list[tuple[str, Any]] = []
gate = threading.Event()


class Sync(Job):
    unique_for = 60

    def perform(self, account: int) -> None:
        ran.append((self.jid, account))


class Held(Job):
    """Runs until the test opens the gate."""

    unique_for = 60
    started: ClassVar[threading.Event] = threading.Event()

    def perform(self, account: int) -> None:
        Held.started.set()
        gate.wait(10)
        ran.append((self.jid, account))


class HeldUntilStart(Held):
    unique_until = "start"


class Broken(Job):
    unique_for = 60
    retry = False

    def perform(self, account: int) -> None:
        raise RuntimeError("always fails")


class Dies(Broken):
    retry = 0  # straight to the dead set


class ByAccount(Job):
    """Identity is the account alone, whatever the note."""

    unique_for = 60

    @staticmethod
    def unique_key(account: int, note: str = "") -> Any:
        return account

    def perform(self, account: int, note: str = "") -> None:
        ran.append((self.jid, account))


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    ran.clear()
    gate.clear()
    Held.started.clear()


def locks(r: redis.Redis) -> list[str]:
    return sorted(str(k) for k in r.scan_iter(match=keys.UNIQUE_PREFIX + "*"))


def test_5000_simultaneous_identical_pushes_make_one_job(r: redis.Redis) -> None:
    start = threading.Barrier(50)

    def push_100(_: int) -> list[str | None]:
        start.wait()
        return [Sync.perform_async(7) or None for _ in range(100)]

    with ThreadPoolExecutor(50) as pool:
        results = [jid for batch in pool.map(push_100, range(50)) for jid in batch]
    assert len(results) == 5000
    accepted = [jid for jid in results if jid]
    assert len(accepted) == 1
    assert Queue("default").size == 1 and len(locks(r)) == 1
    assert r.get(locks(r)[0]) == accepted[0]  # the lock names its job


def test_other_arguments_and_queues_are_other_jobs_but_not_run_times(r: redis.Redis) -> None:
    assert Sync.perform_async(1) and Sync.perform_async(2)
    assert Sync.set(queue="other").perform_async(1)
    assert not Sync.perform_async(1)
    at = time.time() + 600
    assert not Sync.perform_at(at, 1)  # queued already: scheduled or not, the same job
    assert Sync.perform_at(at, 3)
    # Sidekiq Enterprise's rule: the run time is no part of the identity (a debounce).
    assert not Sync.perform_at(at + 1, 3) and not Sync.perform_in(60, 3)
    assert not Sync.perform_async(3)
    assert ScheduledSet().size == 1 and len(locks(r)) == 4
    (digest,) = {e.item["unique_digest"] for e in ScheduledSet()}
    assert r.pttl(keys.unique_lock(digest)) > 600_000, "its wait plus unique_for"


def test_unique_key_hook_names_the_identity() -> None:
    assert ByAccount.perform_async(5, "first")
    assert not ByAccount.perform_async(5, "second")
    assert ByAccount.perform_async(6, "first")


class KeyedWrong(Job):
    unique_for = 60

    def unique_key(self, account: int) -> Any:  # no @staticmethod: self takes the account
        return account

    def perform(self, account: int) -> None:
        pass


class KeyedOdd(Job):
    unique_for = 60

    @staticmethod
    def unique_key(account: int) -> Any:
        return object()

    def perform(self, account: int) -> None:
        pass


class KeyedShort(Job):
    unique_for = 60

    @staticmethod
    def unique_key(account: int) -> Any:  # a @staticmethod already, one argument short
        return account

    def perform(self, account: int, region: str = "eu") -> None:
        pass


def test_a_static_unique_key_taking_other_arguments_is_not_told_to_be_static() -> None:
    with pytest.raises(TypeError) as info:
        KeyedShort.perform_async(1, "us")
    assert "KeyedShort.unique_key: " in str(info.value)
    assert str(info.value).endswith("(it takes perform's arguments)")


def test_a_unique_key_hook_written_wrong_is_named() -> None:
    with pytest.raises(TypeError, match=r"KeyedWrong.unique_key: .*make it a @staticmethod"):
        KeyedWrong.perform_async(1)
    with pytest.raises(TypeError, match=r"KeyedOdd.unique_key returned <object .*>, which is"
                       r" not JSON"):
        KeyedOdd.perform_async(1)
    assert Queue("default").size == 0


def test_bulk_pushes_are_unique_too() -> None:
    jids = Sync.perform_bulk([[1], [1], [2]])
    assert jids[0] and jids[1] is None and jids[2]
    assert Queue("default").size == 2


def test_released_after_success_and_not_while_running(r: redis.Redis) -> None:
    first = Held.perform_async(3)
    with running_worker():
        wait_for(Held.started.is_set, what="the job to start")
        assert not Held.perform_async(3), "a running job still holds its identity"
        gate.set()
        wait_for(lambda: ran, what="the job to finish")
        wait_for(lambda: not locks(r), what="the lock to go after success")
        second = Held.perform_async(3)
        assert second and second != first
        wait_for(lambda: len(ran) == 2, what="the second job")


def test_released_at_start_with_unique_until_start(r: redis.Redis) -> None:
    HeldUntilStart.perform_async(3)
    with running_worker():
        wait_for(Held.started.is_set, what="the job to start")
        assert HeldUntilStart.perform_async(3), "started: an identical job may be queued"
        gate.set()
        wait_for(lambda: len(ran) == 2, what="both jobs")


def test_a_job_that_dies_gives_its_identity_back(r: redis.Redis) -> None:
    Broken.perform_async(9)
    with running_worker():
        wait_for(lambda: not locks(r), what="the lock to go when the job died")
    assert Broken.perform_async(9)


def test_deleting_a_job_from_the_api_releases_it(r: redis.Redis) -> None:
    Sync.perform_async(4)
    Sync.perform_in(600, 5)
    (queued,) = list(Queue("default"))
    assert queued.delete()
    (scheduled,) = list(ScheduledSet())
    assert scheduled.kill() and DeadSet().size == 1
    assert not locks(r)
    assert Sync.perform_in(600, 4) and Sync.perform_async(5)


class AsyncUnique(Job):
    unique_for = 60

    async def perform(self, account: int) -> None:
        ran.append((self.jid, account))


@pytest.mark.parametrize("cls", [Sync, AsyncUnique])
def test_a_job_cancelled_while_queued_gives_its_identity_back(
        r: redis.Redis, cls: type[Job]) -> None:
    queued = cls.perform_async(5)
    assert queued and cancel(queued) is False  # queued: dropped when fetched
    with running_worker():
        wait_for(lambda: Queue("default").size == 0, what="the cancelled job to be fetched")
        wait_for(lambda: not locks(r), what="the lock to go with the dropped job")
    assert not ran, "it never ran"
    assert cls.perform_async(5), "an identical job may be pushed again at once"


def test_the_lock_expires_after_unique_for(r: redis.Redis) -> None:
    assert Sync.set(unique_for=0.3).perform_async(8)
    assert not Sync.perform_async(8)
    deadline = time.monotonic() + 5
    while not Sync.perform_async(8):  # the TTL is Redis's: poll for it to lapse
        assert time.monotonic() < deadline, "the lock never expired"
        time.sleep(0.05)
    assert Queue("default").size == 2


def test_function_jobs_and_options_are_checked() -> None:
    @job(unique_for=30, unique_until="start")
    def refresh(account: int) -> None: ...

    assert refresh.job_class.payload_base()["unique_until"] == "start"
    with pytest.raises(ConfigError, match="unique_for=-1 is invalid"):
        Sync.set(unique_for=-1)
    with pytest.raises(ConfigError, match="unique_until='end' is invalid"):
        type("Bad", (Job,), {"unique_until": "end", "perform": lambda self: None,
                             "__module__": __name__})


def test_kill_all_and_clear_give_identities_back(r: redis.Redis) -> None:
    from sidequest.api import RetrySet

    for account in (1, 2):
        Sync.perform_in(600, account)
    for raw in r.zrange("schedule", 0, -1):  # as if they had failed and wait to retry
        r.zadd("retry", {raw: time.time() + 600})
    r.delete("schedule")
    assert len(locks(r)) == 2
    assert RetrySet().kill_all() == 2
    assert locks(r) == [] and r.zcard("dead") == 2
    Sync.perform_in(600, 3)
    ScheduledSet().clear()  # a whole set at once: each job's end recorded all the same
    assert locks(r) == []


def test_a_dead_job_retried_takes_its_identity_again(r: redis.Redis) -> None:
    # It gave its lock back when it died. Sent to its queue again without it, an identical
    # push was accepted beside it and both ran.
    from sidequest.api import RetrySet

    Dies.perform_async(9)
    with running_worker():
        wait_for(lambda: DeadSet().size == 1 and not locks(r), what="the job to die")
    (dead,) = list(DeadSet())
    assert dead.retry() and Queue("default").size == 1
    assert Dies.perform_async(9) is None, "an identical push was accepted beside it"
    assert len(locks(r)) == 1
    # Retried again while the identical job holds the lock: it stays in the set, said so.
    r.delete("queue:default", *locks(r))
    Dies.perform_async(9)
    r.zadd("dead", {dumps({**dead.item, "jid": "a" * 24}): time.time()})
    dead_set = DeadSet()
    assert dead_set.retry_all() == 0 and dead_set.held == 1 and DeadSet().size == 1
    # A scheduled or retrying job holds its own lock already: moved as before, keeping it.
    scheduled, retrying = Sync.perform_in(600, 1), Sync.perform_in(600, 2)
    (raw,) = [raw for raw in r.zrange("schedule", 0, -1) if retrying in raw]
    r.zrem("schedule", raw)
    r.zadd("retry", {raw: time.time() + 600})
    assert next(iter(ScheduledSet())).add_to_queue() and next(iter(RetrySet())).retry()
    holders = {r.get(lock) for lock in locks(r)}
    assert {scheduled, retrying} <= holders, holders


class Outlasts(Job):
    unique_for = 0.3

    def perform(self, account: int) -> None:
        time.sleep(0.6)
        ran.append((self.jid, account))


def test_a_job_that_ends_after_its_lock_lapsed_is_told_once_per_class(
        caplog: pytest.LogCaptureFixture) -> None:
    # An identical push was accepted while it ran, with no word: unique_for was too short.
    from sidequest import unique

    caplog.set_level("WARNING", logger="sidequest")
    unique._lapse_told.clear()
    Outlasts.perform_async(1)
    Outlasts.perform_async(2)
    Sync.perform_async(3)  # ends in time: nothing to say
    with running_worker():
        wait_for(lambda: len(ran) == 3, what="the three jobs")
    said = [m for m in caplog.messages if "lapsed" in m]
    assert len(said) == 1 and "Outlasts" in said[0] and "unique_for=0.3" in said[0], said


class NotUnique(Job):
    def perform(self, account: int) -> None:
        pass


def test_a_lock_is_seen_and_released_by_hand(r: redis.Redis) -> None:
    # Its job removed by hand (redis-cli), the lock dropped every identical push until
    # unique_for ended, and only a DEL of a key named by an internal hash freed it.
    from sidequest.api import UniqueLock

    jid = Sync.perform_async(11)
    lock = UniqueLock(Sync, [11])
    assert lock.holder == jid and lock.ttl is not None and 0 < lock.ttl <= 60
    assert UniqueLock(Sync, [12]).holder is None and UniqueLock(Sync, [12]).ttl is None
    r.delete("queue:default")
    assert Sync.perform_async(11) is None  # stranded
    r.persist(keys.unique_lock(lock.digest))  # as a hand-written lock: no TTL, never lapses
    assert lock.ttl == math.inf, lock.ttl
    assert lock.release() and not lock.release()
    assert Sync.perform_async(11)
    keyed = ByAccount.perform_async(5, note="x")
    assert UniqueLock(ByAccount, [5], {"note": "other"}).holder == keyed  # the hook's identity
    assert UniqueLock(Sync, [11], queue="other").holder is None
    with pytest.raises(ValueError, match="NotUnique is not a unique job"):
        UniqueLock(NotUnique, [1])


def test_a_dead_job_with_an_odd_unique_for_is_retried_not_lost(r: redis.Redis) -> None:
    # A payload written by hand or by another program: SET refused the TTL after the job had
    # left the dead set, and it was in neither the set nor its queue.
    from sidequest.api.sets import MAX_LOCK_MS

    item = {"class": "Dies", "queue": "default", "args": [1], "jid": "b" * 24, "retry": 0,
            "unique_for": 1e17, "unique_digest": "c" * 32, "created_at": time.time()}
    r.zadd("dead", {dumps(item): time.time()})
    (dead,) = list(DeadSet())
    r.zrem("dead", dead.raw)
    gone = DeadSet()
    assert not gone.move_to_queue(dead, True) and gone.held == 0  # gone, not "held"
    r.zadd("dead", {dead.raw: time.time()})
    assert dead.retry() and Queue("default").size == 1 and DeadSet().size == 0
    assert 0 < r.pttl(keys.unique_lock("c" * 32)) <= MAX_LOCK_MS
