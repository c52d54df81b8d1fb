"""SidequestBackend without a worker: where tasks go, and its configuration errors."""

from __future__ import annotations

import re

import pytest

from sidequest.errors import ConfigError


def test_priority_and_queue_name_pick_the_queue(project: object) -> None:
    import redis
    from django.conf import settings
    from shop.tasks import email, urgent

    r = redis.Redis.from_url(settings.SIDEQUEST["redis_url"])
    r.delete("queue:critical", "queue:emails")
    urgent_id = urgent.enqueue("u").id  # priority 80 >= 50: the critical queue
    email_id = email.enqueue("e").id
    # No worker in this test: the jobs wait in their queues.
    assert urgent_id.encode() in r.lindex("queue:critical", 0)
    assert email_id.encode() in r.lindex("queue:emails", 0)
    r.delete("queue:critical", "queue:emails")


def test_a_queued_task_shows_as_the_task_not_the_runner(project: object) -> None:
    import redis
    from django.conf import settings
    from shop.tasks import email

    from sidequest import api

    r = redis.Redis.from_url(settings.SIDEQUEST["redis_url"])
    r.delete("queue:emails")
    email.enqueue("e")
    (record,) = api.Queue("emails")
    assert record.item["class"] == "sidequest.contrib.django.RunTask"
    assert record.klass == "shop.tasks.email"  # on every dashboard page, and in the metrics
    r.delete("queue:emails")


def test_unknown_result_id(project: object) -> None:
    from shop.tasks import add

    try:
        from django.tasks.exceptions import TaskResultDoesNotExist
    except ImportError:
        from django_tasks.exceptions import TaskResultDoesNotExist
    with pytest.raises(TaskResultDoesNotExist):
        add.get_result("no-such-result")


def test_bad_options_are_named(project: object) -> None:
    from sidequest.contrib.django import SidequestBackend

    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['PRIORITY'\]"):
        SidequestBackend("default", {"OPTIONS": {"PRIORITY": 1}})
    with pytest.raises(ConfigError, match=r"PRIORITY_QUEUES.*pairs"):
        SidequestBackend("default", {"OPTIONS": {"PRIORITY_QUEUES": ["critical"]}})
    with pytest.raises(ConfigError, match="retry='often' is invalid"):
        SidequestBackend("default", {"OPTIONS": {"RETRY": "often"}})


def test_a_failed_push_leaves_no_result(project: object) -> None:
    from shop.tasks import add

    from sidequest import middleware

    try:
        from django.tasks.exceptions import TaskResultDoesNotExist
    except ImportError:
        from django_tasks.exceptions import TaskResultDoesNotExist

    pushed: list[str] = []

    def refuse(payload: dict[str, object], queue: str, call_next: object) -> None:
        pushed.append(str(payload["jid"]))
        raise RuntimeError("refused by a client middleware")

    middleware.client.add(refuse)
    try:
        with pytest.raises(RuntimeError, match="refused"):
            add.enqueue(1, 2)
    finally:
        middleware.client.remove(refuse)
    with pytest.raises(TaskResultDoesNotExist):
        add.get_result(pushed[0])  # the task was never enqueued: no result to show


def test_redis_down_raises_what_perform_async_raises(redis_down: str) -> None:
    from shop.tasks import add

    from sidequest.errors import RedisUnavailable

    # The result is written before the push: that write must fail as the push would.
    with pytest.raises(RedisUnavailable,
                       match=f"^could not reach Redis at {re.escape(redis_down)} "):
        add.enqueue(1, 2)


def test_every_job_state_reads_as_a_task_status(project: object) -> None:
    """A state Sidequest adds (cancelled, expired) must not read as READY, which a caller
    polls for ever."""
    from sidequest import status
    from sidequest.contrib.django import backend

    assert set(backend._STATES) == set(status.STATES)
    ended = {name for name, kind in backend._STATES.items()
             if kind in (backend.TaskResultStatus.FAILED, backend.TaskResultStatus.SUCCESSFUL)}
    assert ended == {"succeeded", "dead", "cancelled", "expired"}


def test_a_result_reads_in_the_testing_modes(project: object) -> None:
    """JobStatus refuses the testing modes; the backend reads its own hash, so a project's
    tests under testing.fake() can still enqueue and refresh a task result."""
    from shop.tasks import add

    from sidequest import testing

    with testing.fake():
        result = add.enqueue(2, 3)
        assert add.get_result(result.id).status == "READY"
        testing.clear_all()
