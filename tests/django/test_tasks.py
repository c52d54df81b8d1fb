"""SidequestBackend through Django's own task API: ``@task`` functions, ``.enqueue()``,
``.get_result()``, run by a real ``manage.py sidequest`` worker."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from typing import Any

import pytest

from helpers import wait_for

pytestmark = pytest.mark.usefixtures("events")


def finished(task: Any, result_id: str, timeout: float = 30) -> Any:
    def check() -> Any:
        result = task.get_result(result_id)
        return result if result.is_finished else None

    return wait_for(check, timeout, f"task result {result_id}")


def test_enqueue_and_get_result(worker: subprocess.Popen[str]) -> None:
    from shop.tasks import add

    result = add.enqueue(2, 3)
    assert result.status == "READY" and result.backend == "default"
    done = finished(add, result.id)
    assert done.status == "SUCCESSFUL" and done.return_value == 5
    assert done.args == [2, 3] and done.kwargs == {}
    assert done.enqueued_at <= done.started_at <= done.finished_at
    assert done.attempts == 1 and done.errors == []
    result.refresh()
    assert result.return_value == 5


def test_a_failing_task_is_failed_with_its_error(worker: subprocess.Popen[str]) -> None:
    from shop.tasks import explode

    result = explode.enqueue("boom")
    done = finished(explode, result.id)
    assert done.status == "FAILED"
    (error,) = done.errors
    assert error.exception_class is ValueError
    assert "boom" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        done.return_value  # noqa: B018


def test_a_return_value_json_cannot_hold_fails_the_task(
        worker: subprocess.Popen[str]) -> None:
    from shop.tasks import pair, unstorable, unstorable_async

    assert finished(pair, pair.enqueue(4).id).return_value == [4, 4]
    for task in (unstorable, unstorable_async):
        done = finished(task, task.enqueue().id)
        assert done.status == "FAILED", task
        (error,) = done.errors
        assert error.exception_class is TypeError and "Unsupported type" in error.traceback


def test_an_argument_json_cannot_carry_is_named_as_the_tasks(project: object) -> None:
    from shop.tasks import add

    with pytest.raises(TypeError, match=r"the task's args\[0\] is nan"):
        add.enqueue(float("nan"), 1)
    with pytest.raises(TypeError, match=r"the task's kwargs\['b'\] is inf"):
        add.enqueue(1, b=float("inf"))


def test_async_task_and_context(worker: subprocess.Popen[str]) -> None:
    from shop.tasks import attempt_number, shout

    loud = shout.enqueue("hey")
    counted = attempt_number.enqueue("ctx")
    assert finished(shout, loud.id).return_value == "HEY"
    assert finished(attempt_number, counted.id).return_value == 1


def test_run_after_waits(worker: subprocess.Popen[str]) -> None:
    import redis
    from django.conf import settings
    from django.utils import timezone
    from shop.tasks import add

    result = add.using(run_after=timezone.now() + timedelta(seconds=3)).enqueue(1, 1)
    r = redis.Redis.from_url(settings.SIDEQUEST["redis_url"])
    assert r.zscore("schedule", r.zrange("schedule", 0, -1)[0]) is not None
    assert add.get_result(result.id).status == "READY"
    # Scheduled jobs are polled every few seconds; the worker's poll moves it when due.
    done = finished(add, result.id, timeout=60)
    assert done.return_value == 2 and done.started_at >= result.enqueued_at + timedelta(
        seconds=3)


def test_signals(worker: subprocess.Popen[str]) -> None:
    import os

    from shop.models import Event
    from shop.tasks import add

    result = add.enqueue(4, 4)
    finished(add, result.id)

    def all_three() -> dict[str, str] | None:
        kinds = dict(Event.objects.filter(key=result.id).values_list("kind", "value"))
        return kinds if len(kinds) == 3 else None

    kinds = wait_for(all_three, 30, "the three signals")
    assert kinds["task_enqueued"] == f"{os.getpid()}:READY"  # where it was enqueued
    assert kinds["task_started"].endswith(":RUNNING")
    assert kinds["task_finished"].endswith(":SUCCESSFUL")
    assert kinds["task_started"].split(":")[0] == str(worker.pid)  # in the worker


def test_a_task_raising_system_exit_is_failed_with_its_error(
        worker: subprocess.Popen[str]) -> None:
    from shop.tasks import leave

    done = finished(leave, leave.enqueue(3).id)
    assert done.status == "FAILED"
    (error,) = done.errors
    assert error.exception_class is SystemExit
    assert worker.poll() is None  # the worker runs on


def test_a_deferred_tasks_result_is_kept_past_its_run_time() -> None:
    # Its time to live counted from the enqueue: deferred for longer than RESULT_TTL, it
    # had no result from then until it ran.
    import redis
    from django.conf import settings
    from django.utils import timezone
    from shop.tasks import add

    result = add.using(run_after=timezone.now() + timedelta(days=2)).enqueue(1, 2)
    r = redis.Redis.from_url(settings.SIDEQUEST["redis_url"])
    assert r.ttl(f"sq:status:{result.id}") > 2 * 86400
    assert add.get_result(result.id).status == "READY"


@pytest.mark.parametrize(("payload", "again"), [
    ({"retry": 0}, False),
    ({"retry": False}, False),
    ({"retry": 2}, True),  # the first failure: retry_count not set yet
    ({"retry": 2, "retry_count": 0}, True),
    ({"retry": 2, "retry_count": 1}, False),  # the second retry failed: no more
    ({"retry": True, "retry_count": 3}, True),
])
def test_a_failure_that_will_be_retried_does_not_finish_the_task(
        payload: dict[str, Any], again: bool) -> None:
    # task_finished with FAILED was sent for every attempt, the retried ones included.
    from sidequest.contrib.django.backend import _will_retry

    assert _will_retry(payload) is again
