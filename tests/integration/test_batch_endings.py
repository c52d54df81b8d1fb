"""Every way a batch's job can end is counted in its batch, so that no batch waits forever:
an ``async def perform`` job like a thread job; a unique duplicate refused at its push is no
member; a job dropped unrun (expired, cancelled while queued or scheduled, or an async one
cancelled while running) is done without a failure; a job dead after too many over-limit
reschedules is a failure. Real Redis, in-process workers."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Batch, Job, OverLimit, job, limiter, testing
from sidequest.api import BatchStatus, DeadSet, Queue, ScheduledSet, cancel

calls: list[tuple[str, str]] = []
ran: list[str] = []
lock = threading.Lock()
started = threading.Event()


class BEDone(Job):
    def perform(self, tag: str) -> None:
        with lock:
            calls.append(("success", tag))


class BEReport(Job):
    def perform(self, tag: str) -> None:
        with lock:
            calls.append(("complete", tag))


class BERow(Job):
    def perform(self, n: int) -> None:
        with lock:
            ran.append(f"row {n}")


class BEAsyncRow(Job):
    async def perform(self, n: int) -> None:
        await asyncio.sleep(0)
        with lock:
            ran.append(f"async row {n}")


class BEAsyncBroken(Job):
    retry = False

    async def perform(self) -> None:
        raise RuntimeError("async failure")


class BEUnique(Job):
    unique_for = 600

    def perform(self, n: int) -> None:
        with lock:
            ran.append(f"unique {n}")


class BEStale(Job):
    expires_in = 0.2

    def perform(self) -> None:
        ran.append("stale ran")


@job(expires_in=0.2)
async def be_async_stale() -> None:
    ran.append("async stale ran")


class BEAsyncWaiter(Job):
    async def perform(self) -> None:
        started.set()
        await asyncio.sleep(30)


class BELimited(Job):
    def perform(self) -> None:
        raise OverLimit("be-gateway", 1.0)


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    calls.clear()
    ran.clear()
    started.clear()


def _batch(tag: str) -> Batch:
    return Batch(description=tag, on_success=(BEDone, [tag]), on_complete=(BEReport, [tag]))


def _fired(*expected: tuple[str, str]) -> None:
    wait_for(lambda: sorted(calls) == sorted(expected), what=f"callbacks {expected}")


def test_async_jobs_count_in_their_batch() -> None:
    good, mixed = _batch("good"), _batch("mixed")
    with good.jobs():
        BEAsyncRow.perform_bulk([[1], [2]])
    with mixed.jobs():
        BEAsyncRow.perform_async(3)
        broken = BEAsyncBroken.perform_async()
    with running_worker():
        _fired(("complete", "good"), ("success", "good"), ("complete", "mixed"))
    status = BatchStatus(mixed.bid)
    assert status.failed_jids == [broken] and status.pending == 1 and not status.success
    assert BatchStatus(good.bid).success and len(ran) == 3


def test_a_unique_duplicate_refused_at_its_push_is_not_a_member() -> None:
    batch = _batch("unique")
    with batch.jobs():
        first = BEUnique.perform_async(1)
        duplicate = BEUnique.perform_async(1)  # refused: the first is queued
        bulk = BEUnique.perform_bulk([[1], [2]])  # the bulk path: [1] refused again
    assert first and duplicate is None and bulk[0] is None and bulk[1]
    status = BatchStatus(batch.bid)
    assert (status.total, status.pending) == (2, 2)
    with running_worker():
        _fired(("complete", "unique"), ("success", "unique"))


def test_an_expired_member_is_done_without_a_failure() -> None:
    batch = _batch("expired")
    with batch.jobs():
        BEStale.perform_async()
        be_async_stale.perform_async()
        BERow.perform_async(1)
    deadline = time.time() + 0.25
    wait_for(lambda: time.time() > deadline, what="the deadline to pass")
    with running_worker():
        _fired(("complete", "expired"), ("success", "expired"))
    status = BatchStatus(batch.bid)
    assert (status.pending, status.failures) == (0, 0) and ran == ["row 1"]


def test_a_member_cancelled_before_it_ran_is_done_without_a_failure() -> None:
    batch = _batch("cancelled")
    with batch.jobs():
        queued = BERow.perform_async(1)
        queued_async = BEAsyncRow.perform_async(2)
        scheduled = BERow.perform_in(3600, 3)
        BERow.perform_async(4)
    assert queued and queued_async and scheduled
    # Taken out of the schedule by the API: no worker ever sees it, so the API counts it.
    assert cancel(scheduled) is True and ScheduledSet().size == 0
    assert BatchStatus(batch.bid).pending == 3
    assert cancel(queued) is False and cancel(queued_async) is False  # dropped when fetched
    with running_worker():
        _fired(("complete", "cancelled"), ("success", "cancelled"))
    status = BatchStatus(batch.bid)
    assert (status.pending, status.failures) == (0, 0) and ran == ["row 4"]


def test_a_scheduled_member_deleted_from_the_dashboard_is_done_without_a_failure() -> None:
    """The dashboard's Delete on the Scheduled tab is the API's entry.delete(): the job
    will never run, and its batch must not wait for it."""
    batch = _batch("deleted")
    with batch.jobs():
        scheduled = BERow.perform_in(3600, 1)
        BERow.perform_async(2)
    (entry,) = [e for e in ScheduledSet() if e.jid == scheduled]
    assert entry.delete() and BatchStatus(batch.bid).pending == 1
    with running_worker():
        _fired(("complete", "deleted"), ("success", "deleted"))
    assert ran == ["row 2"]


def test_an_async_member_cancelled_while_running_is_done_without_a_failure() -> None:
    batch = _batch("stopped")
    with batch.jobs():
        jid = BEAsyncWaiter.perform_async()
    assert jid
    with running_worker():
        wait_for(started.is_set, what="the job to start")
        cancel(jid)
        _fired(("complete", "stopped"), ("success", "stopped"))
    assert BatchStatus(batch.bid).failures == 0


def test_a_member_dead_after_over_limit_reschedules_is_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limiter, "max_reschedules", 0)  # the first OverLimit kills it
    batch = _batch("limited")
    with batch.jobs():
        dead = BELimited.perform_async()
        BERow.perform_async(1)
    with running_worker():
        _fired(("complete", "limited"))
        wait_for(lambda: DeadSet().size == 1, what="the job to die")
    status = BatchStatus(batch.bid)
    assert status.failed_jids == [dead] and status.pending == 1 and not status.success


def test_a_block_that_raises_leaves_the_batch_unsealed_until_a_block_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As the README says: its callbacks must not claim a batch that was not filled; the
    jobs pushed before the exception run, and the next block on the batch seals it."""
    batch = _batch("interrupted")
    with (caplog.at_level(logging.WARNING, "sidequest"), pytest.raises(RuntimeError),
          batch.jobs()):
        BERow.perform_async(1)
        raise RuntimeError("the rows could not be read")
    assert any(batch.bid in rec.getMessage() and "stays unsealed" in rec.getMessage()
               for rec in caplog.records)
    with running_worker():
        wait_for(lambda: Queue("default").size == 0 and ran == ["row 1"], what="the job")
        assert calls == [] and not BatchStatus(batch.bid).complete
        with batch.jobs():
            BERow.perform_async(2)  # the rest of the batch
        _fired(("complete", "interrupted"), ("success", "interrupted"))


def test_fake_mode_writes_no_batch_to_redis(r: redis.Redis) -> None:
    with testing.fake():
        with _batch("fake").jobs():
            BERow.perform_async(1)
        BERow.drain()
        assert [j["args"] for j in BEDone.jobs] == [["fake"]]
    testing.clear_all()
    assert r.keys("*") == [], "nothing in Redis, and no callback in its schedule"


def test_a_member_dropped_after_a_failure_stays_a_failure() -> None:
    """A retry that expires, or a job cancelled after it failed once: dropping it must not
    clear its failure (on_success fired for a batch with a failed job)."""
    from sidequest import batch as batch_module

    batch = _batch("failed-then-dropped")
    with batch.jobs():
        failing = BERow.perform_in(3600, 1)
        fine = BERow.perform_in(3600, 2)
    assert failing and fine
    (entry,) = [e for e in ScheduledSet() if e.jid == failing]
    batch_module.update(batch.ancestry, failing, "failure")  # its first try failed
    batch_module.dropped({**entry.item, "failed_at": time.time()})  # then it was dropped
    batch_module.update(batch.ancestry, fine, "success")
    status = BatchStatus(batch.bid)
    assert status.complete and not status.success and status.failed_jids == [failing]


def test_a_complete_batch_keeps_no_set_of_the_jobs_that_ran(r: redis.Redis) -> None:
    # That set only tells when every member has run: kept, it held 1.5 MB for a batch of
    # 20,000 jobs for days after it ended. A late report of a member makes nothing fire again.
    from sidequest import keys
    from sidequest.batch import update

    batch = _batch("tidy")
    with batch.jobs():
        jids = BERow.perform_bulk([[1], [2], [3]])
    with running_worker():
        _fired(("complete", "tidy"), ("success", "tidy"))
    assert not r.exists(keys.batch_part(batch.bid, "ran"))
    assert update([batch.bid], str(jids[0]), "success") == 0  # reported again, late
    assert BatchStatus(batch.bid).success and r.zcard("schedule") == 0
