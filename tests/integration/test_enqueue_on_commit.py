"""``enqueue_on_commit``: the push goes to the installed transaction integration and is
written only when it runs the push (the commit); the option is never written to Redis."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import redis

from sidequest import Job, oncommit
from sidequest.errors import ConfigError


class Receipt(Job):
    enqueue_on_commit = True

    def perform(self, order: int) -> None:
        pass


class Plain(Job):
    def perform(self, order: int) -> None:
        pass


@pytest.fixture
def pending() -> Iterator[list[Callable[[], object]]]:
    """A stand-in transaction: pushes wait in this list until the test "commits"."""
    waiting: list[Callable[[], object]] = []
    previous = oncommit.install(waiting.append)
    try:
        yield waiting
    finally:
        oncommit.install(previous)


def test_without_an_integration_the_push_is_refused(r: redis.Redis) -> None:
    previous = oncommit.install(None)
    try:
        with pytest.raises(ConfigError, match="INSTALLED_APPS"):
            Receipt.perform_async(1)
    finally:
        oncommit.install(previous)
    assert r.llen("queue:default") == 0


def test_the_push_waits_for_the_commit(r: redis.Redis,
                                       pending: list[Callable[[], object]]) -> None:
    jid = Receipt.perform_async(7)
    assert r.llen("queue:default") == 0 and len(pending) == 1
    pending.pop()()  # the commit
    (raw,) = r.lrange("queue:default", 0, -1)
    job = json.loads(raw)
    assert job["jid"] == jid and job["args"] == [7]
    assert "enqueue_on_commit" not in job


def test_set_option_and_rollback(r: redis.Redis, pending: list[Callable[[], object]]) -> None:
    Plain.set(enqueue_on_commit=True).perform_async(1)
    Receipt.set(enqueue_on_commit=False).perform_async(2)  # at once
    assert [json.loads(x)["args"] for x in r.lrange("queue:default", 0, -1)] == [[2]]
    pending.clear()  # a rollback: the deferred push is forgotten
    assert r.llen("queue:default") == 1


def test_bad_arguments_fail_at_the_call_not_at_the_commit(
        r: redis.Redis, pending: list[Callable[[], object]]) -> None:
    with pytest.raises(TypeError):
        Receipt.perform_async({1, 2})  # type: ignore[arg-type]
    assert pending == []


def test_bulk_pushes_wait_too_and_keep_their_jids(
        r: redis.Redis, pending: list[Callable[[], object]]) -> None:
    jids = Plain.set(enqueue_on_commit=True).perform_bulk([[1], [2]])
    assert r.llen("queue:default") == 0 and len(jids) == 2 and all(jids)
    pending.pop()()
    written = [json.loads(x) for x in r.lrange("queue:default", 0, -1)]
    assert sorted(job["jid"] for job in written) == sorted(jids)


def test_inside_a_batch_it_is_refused(r: redis.Redis,
                                      pending: list[Callable[[], object]]) -> None:
    from sidequest import Batch

    batch = Batch(description="receipts")
    with pytest.raises(ValueError, match="batch"), batch.jobs():
        Receipt.perform_async(1)
    assert pending == [] and r.llen("queue:default") == 0


def test_inside_a_batch_outside_a_transaction_it_is_pushed_into_the_batch(
        r: redis.Redis) -> None:
    """Django in autocommit (or a batch job adding to its batch): nothing to wait for, so
    the push is written at once, into the batch, as the README says of such pushes."""
    from sidequest import Batch, keys

    def at_once(push: Callable[[], object]) -> None:
        push()

    previous = oncommit.install(at_once, waits=lambda: False)
    try:
        batch = Batch(description="receipts")
        with batch.jobs():
            jid = Receipt.perform_async(1)
    finally:
        oncommit.install(previous)
    (raw,) = r.lrange("queue:default", 0, -1)
    job = json.loads(raw)
    assert job["jid"] == jid and job["sq_batch"] == [batch.bid]
    assert r.hget(keys.batch(batch.bid), "total") == "1"
