"""A batch member's outcome is written with its acknowledgement (or its failure's record),
through the worker's retrying write: a connection cut as it is sent delays it, and never
turns a job that succeeded into a failure (a retry, a rerun, or a batch waiting for good)."""

from __future__ import annotations

import json
from typing import Any

import redis

import sidequest
from apps.fault_jobs import AsyncWork, Record, Work
from fault.conftest import SpawnWorker
from fault.harness import Ledger, jids
from fault.proxy import FaultProxy, evalsha_of
from helpers import wait_for
from sidequest import Batch, connection, keys
from sidequest.api import BatchStatus, Queue
from sidequest.errors import RedisUnavailable


def test_a_cut_as_batch_outcomes_are_sent_fails_no_job(
        proxy: FaultProxy, spawn: SpawnWorker, sq: str, r: redis.Redis,
        ledger: Ledger) -> None:
    # Loaded, as in a Redis that served workers before: the cuts hit the real sends.
    for name in ("fetch", "putback", "requeue", "batch_update"):
        r.script_load(connection.script(name).script)
    batch = Batch(on_success=(Record, []))
    with batch.jobs():
        accepted = [*Work.perform_bulk([[0.01]] * 40), *AsyncWork.perform_bulk([[0.01]] * 20)]
    # One thread: the cuts fall on one job's outcome in a row, more than a resend absorbs.
    cut = proxy.cut(evalsha_of("batch_update"), "before", times=4)
    worker = spawn("-c", "1", url=proxy.url())
    wait_for(lambda: BatchStatus(batch.bid).success, timeout=30, what="the batch's success")
    wait_for(lambda: ledger.done_count() == len(accepted) + 1, what="the jobs and the callback")
    report = ledger.check(accepted, dead=jids(r.zrange("dead", 0, -1)))
    status = BatchStatus(batch.bid)
    assert cut.fired == 4, "the cuts hit batch outcomes on their way"
    assert report.lost == [] and report.dead_normal == [] and report.reruns == {}, report
    assert r.zcard("retry") == 0, "no success was taken for a failure"
    assert (status.failures, status.pending, status.total) == (0, 0, len(accepted))
    assert worker.alive


def test_a_cut_as_a_cleared_queue_is_recorded_loses_no_record(
        proxy: FaultProxy, sq: str, r: redis.Redis) -> None:
    r.script_load(connection.script("batch_update").script)
    batch = Batch()
    with batch.jobs():
        Work.set(queue="parked").perform_bulk([[0]] * 50)
    cut = proxy.cut(evalsha_of("batch_update"), "before", times=3)
    sidequest.configure(redis_url=proxy.url())
    try:
        Queue("parked").clear()  # its records retried through the cuts, not dropped
    finally:
        sidequest.configure(redis_url=sq)
    status = BatchStatus(batch.bid)
    assert cut.fired == 3
    assert status.success and status.pending == 0 and not r.keys("sq:cleared:*")


def test_a_push_cut_halfway_leaves_no_member_its_batch_would_wait_for(
        proxy: FaultProxy, sq: str, r: redis.Redis) -> None:
    """A batch's members and their jobs are written in one push. Cut after the membership
    reached Redis and before the jobs did (Redis stopped halfway through the write has the
    same effect), the batch waited for good for jobs that were never written."""
    batch = Batch()
    cut = proxy.cut(lambda args: args[:1] == [b"LPUSH"], "before")
    sidequest.configure(redis_url=proxy.url())
    try:
        with batch.jobs():
            try:
                Work.perform_bulk([[0]] * 20)
            except RedisUnavailable as exc:  # "may have been enqueued": the reply was lost
                failed: Exception | None = exc
            else:
                failed = None
    finally:
        sidequest.configure(redis_url=sq)
    assert cut.fired == 1 and failed is not None
    waiting = {m.decode() for m in r.smembers(keys.batch_part(batch.bid, "pending"))}
    queued = {json.loads(raw)["jid"] for raw in r.lrange("queue:default", 0, -1)}
    assert waiting <= queued, f"{len(waiting - queued)} members were never written as jobs"


def test_a_bulk_push_cut_at_a_later_chunk_says_which_jobs_went(
        proxy: FaultProxy, sq: str, r: redis.Redis) -> None:
    """The error named only the chunk in flight: the caller could not tell the chunks
    written before it from those never sent, and pushing everything again ran them twice."""
    pushes = iter(range(100))
    cut = proxy.cut(lambda args: args[:1] == [b"LPUSH"] and next(pushes) == 1, "before")
    batch = Batch()
    sidequest.configure(redis_url=proxy.url())
    try:
        with batch.jobs():
            try:
                Work.perform_bulk([[i] for i in range(25)], batch_size=10)
            except RedisUnavailable as exc:
                failed: RedisUnavailable | None = exc
            else:
                failed = None
    finally:
        sidequest.configure(redis_url=sq)
    assert cut.fired == 1 and failed is not None
    queued = {json.loads(raw)["jid"] for raw in r.lrange("queue:default", 0, -1)}
    assert len(failed.enqueued) == 10 and set(failed.enqueued) == queued, str(failed)
    assert len(failed.unsent) == 5 and not set(failed.unsent) & queued
    assert "10 jobs were enqueued" in str(failed) and "5 after it were not sent" in str(failed)
    waiting = {m.decode() for m in r.smembers(keys.batch_part(batch.bid, "pending"))}
    assert waiting == queued  # the cut chunk joined the batch no more than it was written


def test_a_child_batch_whose_reply_was_lost_is_counted_once_in_its_parent(
        proxy: FaultProxy, sq: str, r: redis.Redis) -> None:
    """The child's record and its place in the parent are one transaction. Its reply lost,
    redis-py sent it again: the parent counted two members for one child and never ended."""
    parent = Batch()
    cut = proxy.cut(lambda args: args[:1] == [b"EXEC"], "after")
    sidequest.configure(redis_url=proxy.url())
    try:
        try:
            Batch(parent=parent)
        except RedisUnavailable as exc:
            said: str | None = str(exc)
        else:
            said = None
    finally:
        sidequest.configure(redis_url=sq)
    members = r.smembers(keys.batch_part(parent.bid, "pending"))
    assert cut.fired == 1 and len(members) == 1
    assert r.hget(keys.batch(parent.bid), "total") == b"1", "the child was counted twice"
    child = next(iter(members)).decode().removeprefix("b:")
    assert said is not None and "may have been created" in said and child in said, said
    with parent.jobs():  # the parent's own block ends
        pass
    assert not BatchStatus(parent.bid).complete, "the parent did not wait for its child"
    with Batch.find(child).jobs():  # what the error says to do: the parent then ends
        pass
    assert BatchStatus(parent.bid).complete, BatchStatus(parent.bid)


def three_job_batch() -> Batch:
    batch = Batch()
    with batch.jobs():
        Work.perform_bulk([[0]] * 3)
    return batch


def clear_losing_the_reply(proxy: FaultProxy, sq: str) -> tuple[Any, bool]:
    """Clear the default queue through the proxy, which drops the reply to its EXEC (redis-py
    then sends the transaction again): the cut, and what clear() returned."""
    cut = proxy.cut(lambda args: args[:1] == [b"EXEC"], "after")
    sidequest.configure(redis_url=proxy.url())
    try:
        return cut, Queue("default").clear()
    finally:
        sidequest.configure(redis_url=sq)


def test_a_queue_cleared_as_its_reply_is_lost_records_its_jobs(
        proxy: FaultProxy, sq: str, r: redis.Redis) -> None:
    """The clear renames the queue aside in a transaction that redis-py sent again after the
    reply was lost: the second RENAME found no queue, the clear said "nothing there", and the
    jobs set aside were never recorded as dropped (their batch waited for good)."""
    batch = three_job_batch()
    cut, cleared = clear_losing_the_reply(proxy, sq)
    assert cut.fired == 1 and cleared
    assert not r.exists("queue:default")
    status = BatchStatus(batch.bid)
    assert status.pending == 0 and status.complete, status


def test_a_clear_resent_after_a_push_keeps_the_jobs_set_aside_first(
        proxy: FaultProxy, sq: str, r: redis.Redis) -> None:
    """The same lost reply, and a job pushed before redis-py's resend: a second RENAME put the
    new queue over the one set aside, whose jobs were gone unrecorded (their batch waited
    for good). The resend now leaves the first one's work as it is."""
    batch = three_job_batch()
    is_set_aside, sent = evalsha_of("set_aside"), []

    def push_before_the_resend(args: list[bytes]) -> bool:
        if is_set_aside(args):
            sent.append(args)
            if len(sent) == 2:
                r.lpush("queue:default", json.dumps({"class": "Work", "args": [99],
                                                     "jid": "n" * 24, "queue": "default"}))
        return False

    proxy.cut(push_before_the_resend, "before", times=100)
    cut, cleared = clear_losing_the_reply(proxy, sq)
    assert cut.fired == 1 and cleared and len(sent) == 2, sent
    status = BatchStatus(batch.bid)
    assert status.pending == 0 and status.complete, status
    assert [json.loads(raw)["args"] for raw in r.lrange("queue:default", 0, -1)] == [[99]]
