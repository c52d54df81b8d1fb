"""A batch opened by one of its jobs (``self.batch``, ``Batch.open``) to add jobs to it: the
job's block never seals the batch, so no callback fires while the block that made the batch
is still filling it, or after that block raised; once the batch is sealed, the jobs the job
added still hold its callbacks back until they are done. A batch that expired is not made
again by a job added to it (a job retried by hand days later)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Batch, Job, keys
from sidequest.api import BatchStatus, RetrySet

lock = threading.Lock()
#: (callback, whether the pushing block had ended when it ran)
calls: list[tuple[str, bool]] = []
ran: list[int] = []
block_ended = threading.Event()


class BOSpawnRow(Job):
    """The README's ImportRow: some rows add a second step to their batch."""

    def perform(self, row: int, spawn: bool = False) -> None:
        with lock:
            ran.append(row)
        if spawn:
            batch = self.batch
            assert batch is not None
            with batch.jobs():
                BOSpawnRow.perform_async(row + 100_000)


class BOSlowSpawn(Job):
    """Adds a job to its batch, then waits: it is the batch's last pending member by then."""

    def perform(self) -> None:
        batch = self.batch
        assert batch is not None
        with batch.jobs():
            BOSpawnRow.perform_async(7)
        wait_for(lambda: 7 in ran, what="the added row")  # done before this job ends
        time.sleep(0.3)  # the scheduler's polls pass: nothing may fire while this one runs


class BOUniqueRow(Job):
    unique_for = 60

    def perform(self, row: int) -> None:
        pass


class BODone(Job):
    def perform(self, name: str) -> None:
        with lock:
            calls.append((name, block_ended.is_set()))


children: list[str] = []


class BOChildMaker(Job):
    """Fills a child batch of its own batch, and fails inside the child's block the first
    time, as a job whose API call drops does."""

    def perform(self) -> None:
        batch = self.batch
        assert batch is not None
        child = Batch(parent=batch, on_success=(BODone, ["child success"]))
        with lock:
            children.append(child.bid)
        with child.jobs():
            BOSpawnRow.perform_bulk([[1], [2], [3]])
            if len(children) == 1:
                raise ConnectionError("the upstream API dropped the connection")


class BOGrandchildMaker(Job):
    """Fills a child of its batch and a child of that child, and fails inside the
    grandchild's block the first time."""

    def perform(self) -> None:
        batch = self.batch
        assert batch is not None
        child = Batch(parent=batch, on_success=(BODone, ["child success"]))
        with child.jobs():
            grandchild = Batch(parent=child, on_success=(BODone, ["grandchild success"]))
            with lock:
                children.append(grandchild.bid)
            with grandchild.jobs():
                BOSpawnRow.perform_bulk([[1], [2]])
                if len(children) == 1:
                    raise ConnectionError("the upstream API dropped the connection")


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    calls.clear()
    ran.clear()
    children.clear()
    block_ended.clear()


def _batch() -> Batch:
    return Batch(on_success=(BODone, ["success"]), on_complete=(BODone, ["complete"]))


def _fired(r: redis.Redis, batch: Batch) -> Any:
    return r.hget(keys.batch(batch.bid), "complete_at") or r.hget(keys.batch(batch.bid),
                                                                   "success_at")


def test_a_job_adding_to_its_batch_does_not_end_a_batch_still_being_filled(
        r: redis.Redis) -> None:
    """The block pushes its rows one by one while a worker runs them; a row adds a job to
    the batch and its block ends while the batch's own block still pushes."""
    batch = _batch()
    fired_early: list[Any] = []
    with running_worker(concurrency=2):
        with batch.jobs():
            BOSpawnRow.perform_async(1, True)
            # Everything pushed so far is done, the added job too: only the block is left.
            wait_for(lambda: 100_001 in ran and BatchStatus(batch.bid).pending == 0,
                     what="the first rows and the job one of them added")
            for row in range(2, 40):
                last_pushed = time.time()
                BOSpawnRow.perform_async(row, row % 10 == 0)
                time.sleep(0.005)
                fired_early.append(_fired(r, batch))
            fired_early.append(_fired(r, batch))
            block_ended.set()
        wait_for(lambda: len(calls) >= 2, what="both callbacks")
        time.sleep(0.3)  # a few scheduler polls more: no callback comes twice
    assert not any(fired_early), "a callback was pushed while the block still pushed"
    assert sorted(calls) == [("complete", True), ("success", True)]
    # The time a worker records is the one it took before its update ran, so a row that
    # finished as the block ended may record a moment before the seal; never one before the
    # last row was pushed, which it had to wait for.
    assert float(r.hget(keys.batch(batch.bid), "success_at") or 0) >= last_pushed
    status = BatchStatus(batch.bid)
    assert status.total == 39 + 4 and status.pending == 0 and status.sealed
    assert sorted(ran) == sorted([*range(1, 40), *(n + 100_000 for n in (1, 10, 20, 30))])


def test_a_job_adding_to_a_batch_whose_block_raised_does_not_seal_it(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """As the README says: a block that raised leaves the batch unsealed, with no callbacks,
    whatever its jobs do."""
    batch = _batch()
    with (caplog.at_level(logging.WARNING, "sidequest"), pytest.raises(RuntimeError),
          batch.jobs()):
        BOSpawnRow.perform_async(1, True)
        raise RuntimeError("the rows could not be read")
    with running_worker():
        wait_for(lambda: sorted(ran) == [1, 100_001] and BatchStatus(batch.bid).pending == 0,
                 what="the row and the job it added")
        time.sleep(0.3)  # a few scheduler polls: a callback would be pushed and run by now
    assert calls == [] and not _fired(r, batch)
    assert not BatchStatus(batch.bid).sealed


def test_jobs_added_to_a_sealed_batch_hold_its_callbacks_until_they_are_done(
        r: redis.Redis) -> None:
    """The usual case: the block ended long before a job adds to the batch. The adding job
    is pending while it adds, so the batch waits for it and for what it added, then fires
    each callback once."""
    batch = _batch()
    with batch.jobs():
        BOSlowSpawn.perform_async()
    block_ended.set()
    with running_worker(concurrency=2):
        wait_for(lambda: 7 in ran, what="the added row")
        assert not _fired(r, batch), "fired while the job that added a row still ran"
        wait_for(lambda: len(calls) >= 2, what="both callbacks")
        time.sleep(0.3)
    assert sorted(calls) == [("complete", True), ("success", True)]
    status = BatchStatus(batch.bid)
    assert (status.total, status.pending, status.success) == (2, 0, True)


def test_a_job_added_to_an_expired_batch_runs_outside_any_batch(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """A job retried by hand after its batch expired adds a job: no batch record comes back
    (it would never expire, and read as existing), and the log says why the job is alone."""
    batch = Batch()  # no callbacks: the schedule holds only what the job adds
    with batch.jobs():
        pass
    r.delete(*r.keys(f"{keys.batch(batch.bid)}*"))  # expired
    opened = Batch.open([batch.bid])
    with caplog.at_level(logging.WARNING, "sidequest"), opened.jobs():
        jid = BOSpawnRow.perform_in(600, 1)
        unique = BOUniqueRow.perform_async(2)
    assert jid and unique
    assert r.keys(f"{keys.batch(batch.bid)}*") == []
    assert not BatchStatus(batch.bid).exists
    assert any(batch.bid in rec.getMessage() and "no longer exists" in rec.getMessage()
               for rec in caplog.records)
    scheduled = r.zrange(keys.SCHEDULE, 0, -1)
    assert len(scheduled) == 1 and "sq_batch" not in scheduled[0]


def test_a_child_batch_of_an_expired_batch_does_not_make_it_again(r: redis.Redis) -> None:
    """``Batch(parent=self.batch)`` in a job whose batch expired: the child is made, the
    parent's record is not (it would have no expiry)."""
    parent = _batch()
    r.delete(keys.batch(parent.bid))
    child = Batch(parent=Batch.open([parent.bid]))
    assert BatchStatus(child.bid).exists
    assert not r.exists(keys.batch(parent.bid), keys.batch_part(parent.bid, "pending"))


def test_a_batch_push_makes_the_job_a_member_without_a_script(r: redis.Redis) -> None:
    """Membership goes before the job's write, in plain commands: a script's call refused
    as not loaded (after a Redis restart or failover) would let the write behind it run
    first, and a job a worker finished in between would never count."""
    batch = Batch()
    r.script_flush()
    r.config_resetstat()
    with batch.jobs():
        BOSpawnRow.perform_async(1)
        BOSpawnRow.perform_bulk([[2], [3]])
        stats = r.info("commandstats")  # the pushes' (the seal at the end is a script)
    assert not any(name.startswith("cmdstat_eval") for name in stats), stats
    assert BatchStatus(batch.bid).total == 3


def test_a_child_batch_a_retried_job_made_is_the_one_its_retry_fills_and_seals(
        r: redis.Redis) -> None:
    """Made anew by each run, the child the first run left unsealed held its parent for
    good: no callback of the parent ever fired."""
    batch = _batch()
    with batch.jobs():
        BOChildMaker.perform_async()
    with running_worker():
        wait_for(lambda: RetrySet().size == 1, what="the job's failure")
        assert RetrySet().retry_all() == 1  # Retry now, rather than wait out the backoff
        wait_for(lambda: len(calls) == 3, what="the child's success, the parent's callbacks")
    assert len(children) == 2 and children[0] == children[1], children  # the same child
    assert sorted(name for name, _ in calls) == ["child success", "complete", "success"]
    assert BatchStatus(children[0]).total == 6  # each run's three jobs
    assert BatchStatus(batch.bid).pending == 0


def test_a_grandchild_batch_a_retried_job_made_is_found_again_too(r: redis.Redis) -> None:
    batch = _batch()
    with batch.jobs():
        BOGrandchildMaker.perform_async()
    with running_worker():
        wait_for(lambda: RetrySet().size == 1, what="the job's failure")
        assert RetrySet().retry_all() == 1
        wait_for(lambda: len(calls) == 4, what="every batch's callbacks")
    assert len(children) == 2 and children[0] == children[1], children
    assert sorted(name for name, _ in calls) == ["child success", "complete",
                                                 "grandchild success", "success"]


def test_a_child_record_that_lost_its_bid_field_still_ends_its_parent(r: redis.Redis) -> None:
    """A failover can keep a batch record's later writes and lose its creation's (seen with
    Sentinel, after a split brain): the outcome's script failed on the missing bid, at every
    retry, and the parent never ended."""
    batch = _batch()
    with batch.jobs():
        child = Batch(parent=batch)
        with child.jobs():
            BOSpawnRow.perform_async(1)
    r.hdel(keys.batch(child.bid), "bid")
    with running_worker():
        wait_for(lambda: len(calls) == 2, what="the parent's callbacks")
    assert BatchStatus(batch.bid).success
