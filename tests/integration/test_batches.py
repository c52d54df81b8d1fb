"""Batches on a real Redis with in-process workers: callbacks fire exactly once, on_complete
when every job ran once, on_success when all succeeded (a retried job counts when it
succeeds); jobs add jobs through self.batch; nested batches fire child first."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import redis

import sidequest
from helpers import running_worker, wait_for
from sidequest import Batch, Job, RedisUnavailable, keys
from sidequest.api import BatchStatus

calls: list[tuple[str, Any]] = []
lock = threading.Lock()
attempts: dict[int, int] = {}


def called(name: str, arg: Any) -> None:
    with lock:
        calls.append((name, arg))


class Row(Job):
    retry = 3

    @classmethod
    def retry_in(cls, count: int, exc: BaseException, payload: Any) -> float:
        return 0.1  # retry at once: the scheduler brings it back within a poll

    def perform(self, n: int, fail_first: bool = False) -> None:
        with lock:
            attempts[n] = attempts.get(n, 0) + 1
            first = attempts[n] == 1
        if fail_first and first:
            raise RuntimeError(f"row {n}: transient")


class Doomed(Job):
    retry = False

    def perform(self) -> None:
        raise RuntimeError("always")


class Fanout(Job):
    def perform(self, n: int) -> None:
        batch = self.batch
        assert batch is not None
        with batch.jobs():
            Row.perform_async(1000 + n)


class OnSuccess(Job):
    def perform(self, tag: str) -> None:
        called("success", tag)


class OnComplete(Job):
    def perform(self, tag: str) -> None:
        called("complete", tag)


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    calls.clear()
    attempts.clear()


@pytest.mark.slow  # a load test: run once, not on every Python
def test_10000_jobs_with_5_percent_failing_once_fire_each_callback_once(r: redis.Redis) -> None:
    batch = Batch(description="import", on_success=(OnSuccess, ["import"]),
                  on_complete=(OnComplete, ["import"]))
    with batch.jobs():
        Row.perform_bulk([[i, i % 20 == 0] for i in range(10_000)])  # 5% fail once
    assert BatchStatus(batch.bid).total == 10_000
    with running_worker(concurrency=10):
        wait_for(lambda: len(calls) == 2, timeout=120, what="both callbacks")
        wait_for(lambda: BatchStatus(batch.bid).success, what="the batch's success")
    status = BatchStatus(batch.bid)
    assert sorted(calls) == [("complete", "import"), ("success", "import")]
    assert (status.total, status.pending, status.failures) == (10_000, 0, 0)
    assert status.complete and status.description == "import"
    assert r.ttl(f"sq:batch:{batch.bid}") <= 3 * 86400


def test_a_dead_job_fires_on_complete_once_and_on_success_never() -> None:
    batch = Batch(on_success=(OnSuccess, ["b"]), on_complete=(OnComplete, ["b"]))
    with batch.jobs():
        Row.perform_async(1)
        dead = Doomed.perform_async()
    with running_worker():
        wait_for(lambda: calls, what="on_complete")
        status = wait_for(lambda: (s := BatchStatus(batch.bid)).complete and s, what="complete")
    assert calls == [("complete", "b")]
    assert status.failed_jids == [dead] and not status.success and status.pending == 1


def test_jobs_add_jobs_and_nested_batches_fire_child_first() -> None:
    parent = Batch(description="parent", on_success=(OnSuccess, ["parent"]))
    child = Batch(description="child", parent=parent, on_success=(OnSuccess, ["child"]))
    with child.jobs():
        Fanout.perform_bulk([[i] for i in range(5)])  # each adds a Row to the child
    with parent.jobs():
        Row.perform_async(99)
    with running_worker(concurrency=3):
        wait_for(lambda: len(calls) == 2, timeout=20, what="both batches' callbacks")
    assert calls == [("success", "child"), ("success", "parent")]
    # The parent's members: the child batch, Row 99 and the child's callback.
    assert BatchStatus(child.bid).total == 10 and BatchStatus(parent.bid).total == 3
    assert {1000 + i for i in range(5)} <= set(attempts)


def test_a_childs_callback_is_a_job_of_the_parent_which_waits_for_its_success() -> None:
    parent = Batch(on_success=(OnSuccess, ["parent"]), on_complete=(OnComplete, ["parent"]))
    child = Batch(parent=parent, on_success=(Doomed, []))  # the callback dies: no retries
    with child.jobs():
        Row.perform_async(1)
    with parent.jobs():
        pass
    with running_worker():
        wait_for(lambda: calls, what="the parent's on_complete")
        status = wait_for(lambda: (s := BatchStatus(parent.bid)).complete and s,
                          what="the parent complete")
    assert calls == [("complete", "parent")], "never on_success: the child's callback died"
    assert status.total == 2 and status.failures == 1 and not status.success
    assert BatchStatus(child.bid).success


def test_a_callback_stored_without_the_parents_ancestry_does_not_join_it(
        r: redis.Redis) -> None:
    """One stored by an older version, whose payload does not say it is a job of the
    parent: the parent does not wait for what would never report to it."""
    parent = Batch(on_success=(OnSuccess, ["parent"]))
    child = Batch(parent=parent, on_success=(OnSuccess, ["child"]))
    stored = json.loads(r.hget(keys.batch(child.bid), "on_success") or "{}")
    assert stored.pop("sq_batch") == [parent.bid]
    r.hset(keys.batch(child.bid), "on_success", json.dumps(stored))
    with child.jobs():
        Row.perform_async(1)
    with parent.jobs():
        pass
    with running_worker():
        wait_for(lambda: len(calls) == 2, what="both batches' callbacks")
        wait_for(lambda: BatchStatus(parent.bid).success, what="the parent's success")
    assert sorted(calls) == [("success", "child"), ("success", "parent")]
    assert BatchStatus(parent.bid).total == 1


def test_an_empty_batch_succeeds_when_sealed() -> None:
    batch = Batch(on_success=(OnSuccess, ["empty"]))
    with batch.jobs():
        pass
    with running_worker():
        wait_for(lambda: calls == [("success", "empty")], what="the callback")


def test_batches_during_an_outage_raise_redis_unavailable_saying_what_was_left() -> None:
    sidequest.configure("redis://:secret@127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        with pytest.raises(RedisUnavailable, match="the batch was not created") as made:
            Batch(on_success=(OnSuccess, ["x"]))
        with pytest.raises(RedisUnavailable, match="status was not read") as read:
            BatchStatus("a" * 24)
        assert all("secret" not in str(e.value) for e in (made, read))
    finally:
        sidequest.connection.reset()


def test_an_unknown_bid_reads_as_missing_not_as_an_empty_batch() -> None:
    status = BatchStatus("f" * 24)
    assert not status.exists
    assert repr(status) == f"BatchStatus({'f' * 24!r}, exists=False)"
