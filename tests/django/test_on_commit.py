"""``enqueue_on_commit`` at the edges: Redis down at the commit (the data is committed, the job
is not in Redis, and the error must say so), and transactions on a database other than the
default (the push waits for that one's commit)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sidequest.errors import RedisUnavailable

pytestmark = pytest.mark.usefixtures("events")

#: A queue no worker of the suite serves: what is pushed to it stays there to be counted.
QUEUE = "on-commit-edges"


@pytest.fixture
def queued(project: object) -> Iterator[Callable[[], int]]:
    """A function counting the jobs in QUEUE, which starts and ends empty."""
    import redis
    from django.conf import settings

    r = redis.Redis.from_url(settings.SIDEQUEST["redis_url"])
    r.delete(f"queue:{QUEUE}")
    yield lambda: int(r.llen(f"queue:{QUEUE}"))
    r.delete(f"queue:{QUEUE}")
    r.close()


def test_redis_down_at_the_commit_says_the_transaction_committed(redis_down: str) -> None:
    from django.db import transaction
    from shop.jobs import NotifyOnCommit
    from shop.models import Order

    with pytest.raises(RedisUnavailable) as caught, transaction.atomic():
        Order.objects.create(number=31)
        jid = NotifyOnCommit.set(queue=QUEUE).perform_async(31)
    message = str(caught.value)
    assert Order.objects.filter(number=31).exists()  # committed, whatever the push did
    assert message.startswith(
        f"the transaction on database 'default' has committed, but job "
        f"shop.jobs.NotifyOnCommit (jid {jid}) was not enqueued: could not reach Redis at "
        f"{redis_down} ("), message
    assert "Connection refused.). The commit cannot be undone, so failing the request would " \
           "not roll it back" in message
    assert message.count("not enqueued") == 1
    assert "catch sidequest.RedisUnavailable around the `with transaction.atomic():`" in message
    assert "outbox" in message
    # The advice of a push before any commit: wrong here, since a commit cannot be undone.
    assert "retry later or fail the request" not in message


def test_a_bulk_push_at_the_commit_names_its_jobs(redis_down: str) -> None:
    from django.db import transaction
    from shop.jobs import NotifyOnCommit

    with pytest.raises(RedisUnavailable) as caught, transaction.atomic():
        jids = NotifyOnCommit.set(queue=QUEUE).perform_bulk([[n] for n in range(5)])
    message = str(caught.value)
    named = ", ".join(f"shop.jobs.NotifyOnCommit (jid {jid})" for jid in jids[:3])
    assert f"but jobs {named} and 2 more were not enqueued: " in message, message
    assert "push them again once Redis answers" in message


def test_every_push_waiting_for_the_commit_is_tried_and_named(redis_down: str) -> None:
    # Django runs none of a transaction's on_commit callbacks after one raises: the first
    # failing push must try the others itself and name all that failed, and not one that a
    # rolled-back savepoint dropped.
    from django.db import transaction
    from shop.jobs import NotifyOnCommit

    job = NotifyOnCommit.set(queue=QUEUE)
    with pytest.raises(RedisUnavailable) as caught, transaction.atomic():
        first = job.perform_async(41)
        with pytest.raises(RuntimeError), transaction.atomic():
            dropped = job.perform_async(42)
            raise RuntimeError("roll the savepoint back")
        second = job.perform_async(43)
        (third,) = job.perform_bulk([[44]])
    message = str(caught.value)
    named = ", ".join(f"shop.jobs.NotifyOnCommit (jid {jid})" for jid in (first, second, third))
    assert f"but jobs {named} were not enqueued: " in message, message
    assert dropped not in message


def test_the_pushes_after_a_failed_one_are_still_made(queued: Callable[[], int]) -> None:
    from django.db import transaction
    from shop.jobs import NotifyOnCommit

    from sidequest import middleware

    def refuse_41(job: dict[str, object], queue: str, call_next: Callable[[], object]) -> object:
        if job["args"] == [41]:
            raise RedisUnavailable("could not reach Redis at redis://test (refused)")
        return call_next()

    middleware.client.add(refuse_41)
    try:
        with pytest.raises(RedisUnavailable) as caught, transaction.atomic():
            failed = NotifyOnCommit.set(queue=QUEUE).perform_async(41)
            NotifyOnCommit.set(queue=QUEUE).perform_async(42)
            NotifyOnCommit.set(queue=QUEUE).perform_async(43)
    finally:
        middleware.client.remove(refuse_41)
    assert f"but job shop.jobs.NotifyOnCommit (jid {failed}) was not enqueued" in str(caught.value)
    assert queued() == 2
    with transaction.atomic():  # the next transaction is on its own
        NotifyOnCommit.set(queue=QUEUE).perform_async(44)
    assert queued() == 3


def test_a_transaction_on_another_database_defers_the_push(queued: Callable[[], int]) -> None:
    from django.db import transaction
    from shop.jobs import RecordOrder

    count = queued
    job = RecordOrder.set(queue=QUEUE, enqueue_on_commit=True)
    with pytest.raises(RuntimeError), transaction.atomic(using="other"):
        job.perform_async(1)
        raise RuntimeError("roll back")
    assert count() == 0  # rolled back: never pushed
    with transaction.atomic(using="other"):
        job.perform_async(2)
        assert count() == 0  # not before the commit
    assert count() == 1


def test_with_both_databases_open_the_push_waits_for_the_default(queued: Callable[[], int]) -> None:
    from django.db import transaction
    from shop.jobs import RecordOrder

    count = queued
    job = RecordOrder.set(queue=QUEUE, enqueue_on_commit=True)
    with transaction.atomic():
        with transaction.atomic(using="other"):
            job.perform_async(3)
        assert count() == 0  # "other" has committed; the default has not
    assert count() == 1
    with pytest.raises(RuntimeError), transaction.atomic(), transaction.atomic(using="other"):
        job.perform_async(4)
        raise RuntimeError("roll back both")
    assert count() == 1


def test_a_reply_lost_at_the_commit_says_the_job_may_be_there(project: object) -> None:
    """A push whose reply never came may have been written: the error must not say it was
    not, nor advise pushing it again unchecked (that could run it twice)."""
    from sidequest import wire
    from sidequest.contrib.django.db import _committed_message

    try:
        try:
            raise wire.ReplyLost("Timeout reading from socket")
        except wire.ReplyLost as lost:
            raise RedisUnavailable("the connection to Redis at redis://r:6379/0 failed after "
                                   "the job was sent (Timeout reading from socket), so it may "
                                   "have been enqueued") from lost
    except RedisUnavailable as exc:
        message = _committed_message([([("shop.jobs.NotifyOnCommit", "j1")], exc)], "default")
    assert message.startswith("the transaction on database 'default' has committed, but job "
                              "shop.jobs.NotifyOnCommit (jid j1) may not have been enqueued: ")
    assert "block and once Redis answers, look for it before pushing it again, or" in message


def test_outside_a_transaction_a_refused_duplicate_returns_none(
        queued: Callable[[], int]) -> None:
    # The push runs at once there, so its answer is known: a unique job's duplicate is None,
    # as for any push (a jid would name a job that does not exist).
    from shop.jobs import NotifyOnCommit

    job = NotifyOnCommit.set(queue=QUEUE, unique_for=60)
    assert job.perform_async(51) is not None
    assert job.perform_async(51) is None
    assert queued() == 1


def test_a_push_failing_for_another_reason_at_the_commit_still_lets_the_others_run(
        queued: Callable[[], int]) -> None:
    # Django runs none of a commit's later callbacks after one raises: any error, not only
    # Redis being away (a client middleware's bug, a refused setting), must not cost the
    # other pushes, and it reaches the caller as itself.
    from django.db import transaction
    from shop.jobs import NotifyOnCommit

    from sidequest import middleware

    def broken_for_61(job: dict[str, object], queue: str,
                      call_next: Callable[[], object]) -> object:
        if job["args"] == [61]:
            raise ValueError("a middleware's own bug")
        return call_next()

    middleware.client.add(broken_for_61)
    try:
        with pytest.raises(ValueError, match="a middleware's own bug"), transaction.atomic():
            NotifyOnCommit.set(queue=QUEUE).perform_async(61)
            NotifyOnCommit.set(queue=QUEUE).perform_async(62)
            NotifyOnCommit.set(queue=QUEUE).perform_async(63)
    finally:
        middleware.client.remove(broken_for_61)
    assert queued() == 2


def test_outside_a_transaction_a_push_does_not_open_a_database_connection(
        queued: Callable[[], int]) -> None:
    # A web process whose database is down can still push what needs no commit.
    from django.db import connections
    from shop.jobs import NotifyOnCommit

    connections.close_all()
    assert NotifyOnCommit.set(queue=QUEUE).perform_async(71) is not None
    assert queued() == 1
    assert connections["default"].connection is None


def test_in_a_batch_block_outside_a_transaction_the_push_joins_the_batch(
        queued: Callable[[], int]) -> None:
    # Autocommit (or a batch job adding to its batch): nothing to wait for. Before, refused
    # as if the push waited for a commit the batch would close before.
    import json

    import redis
    from django.conf import settings
    from django.db import transaction
    from shop.jobs import NotifyOnCommit

    from sidequest import Batch

    batch = Batch(description="receipts")
    with batch.jobs():
        jid = NotifyOnCommit.set(queue=QUEUE).perform_async(72)
    r = redis.Redis.from_url(settings.SIDEQUEST["redis_url"])
    (raw,) = r.lrange(f"queue:{QUEUE}", 0, -1)
    assert json.loads(raw)["jid"] == jid and json.loads(raw)["sq_batch"] == [batch.bid]
    r.close()
    with pytest.raises(ValueError, match="while a transaction is open"), \
            transaction.atomic(), Batch(description="in a transaction").jobs():
        NotifyOnCommit.set(queue=QUEUE).perform_async(73)
    assert queued() == 1
