"""``SidequestBackend``: Django's task framework (``django.tasks``, or the ``django-tasks``
backport on Django 5.2) on Sidequest's queues.

    TASKS = {"default": {
        "BACKEND": "sidequest.contrib.django.SidequestBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"PRIORITY_QUEUES": [(50, "critical")], "RETRY": 3},
    }}

A task is pushed as a job of ``RunTask`` (``RunAsyncTask`` for an ``async def`` task, run on
the worker's event loop), with the task's path, arguments and the result id as its jid; a
worker started with ``python manage.py sidequest -q <queue>`` runs it. ``run_after``
schedules it. Priorities pick a queue: ``PRIORITY_QUEUES`` lists ``(lowest priority,
queue)``, and a task whose priority reaches one goes to that queue instead of its own
(give the worker those queues first: ``-q critical -q default``); within a queue jobs run in
order. ``get_result`` reads Sidequest's job status (kept ``RESULT_TTL`` seconds, a day by
default): state, return value, errors, attempts and times. A failed task is retried with
Sidekiq's backoff (``RETRY``, 25 by default; 0 for none) and reads as ``READY`` meanwhile,
``FAILED`` once it gives up; a return value JSON cannot hold fails the task, as in Django's
own backends. ``task_enqueued`` is sent where the task is enqueued,
``task_started`` and ``task_finished`` in the worker that runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import traceback
from datetime import datetime, timezone
from typing import Any, cast

from django.utils.module_loading import import_string

from sidequest import Job, client, connection, keys, retry, status
from sidequest.contrib.django import conf
from sidequest.contrib.django.tasks_api import (
    BaseTaskBackend,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    normalize_json,
    task_enqueued,
    task_finished,
    task_started,
)
from sidequest.errors import ConfigError
from sidequest.options import validate_options
from sidequest.payload import check_args

_STATES = {
    "queued": TaskResultStatus.READY,
    "scheduled": TaskResultStatus.READY,
    "retrying": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "succeeded": TaskResultStatus.SUCCESSFUL,
    "dead": TaskResultStatus.FAILED,
    # Dropped unrun (sidequest.api.cancel, expires_in): Django's tasks have no such end.
    "cancelled": TaskResultStatus.FAILED,
    "expired": TaskResultStatus.FAILED,
}
#: The fields this backend adds to a job's status hash (keys.status), beside Sidequest's.
TASK, ARGS, KWARGS, BACKEND = "task", "task_args", "task_kwargs", "task_backend"
ENQUEUED, STARTED, FINISHED, ERRORS, WORKERS = (
    "enqueued_at", "started_at", "finished_at", "errors", "worker_ids")


class SidequestBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = {str(k).upper(): v for k, v in self.options.items()}
        unknown = set(options) - {"PRIORITY_QUEUES", "RETRY", "RESULT_TTL"}
        if unknown:
            raise ConfigError(f"TASKS[{alias!r}]['OPTIONS']: unknown option(s) "
                              f"{sorted(unknown)}; known: PRIORITY_QUEUES, RETRY, RESULT_TTL")
        self.priority_queues = _priority_queues(alias, options.get("PRIORITY_QUEUES", ()))
        self.retry = options.get("RETRY", True)
        self.result_ttl = options.get("RESULT_TTL", status.DEFAULT_TTL)
        validate_options({"retry": self.retry, "result_ttl": self.result_ttl},
                         f"TASKS[{alias!r}]['OPTIONS']", ("retry", "result_ttl"))

    def queue_for(self, task: Any) -> str:
        for lowest, queue in self.priority_queues:
            if task.priority >= lowest:
                return queue
        return str(task.queue_name)

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        conf.raise_problem()  # a bad SIDEQUEST: before the result is written to any Redis
        self.validate_task(task)
        result = TaskResult(
            task=task, id=os.urandom(12).hex(), status=TaskResultStatus.READY,
            enqueued_at=None, started_at=None, last_attempted_at=None, finished_at=None,
            args=list(args), kwargs=dict(kwargs), backend=self.alias, errors=[], worker_ids=[])
        # Django refused what JSON has no type for; NaN and the like are left: name them as
        # the task's arguments, not as the arguments of the job that carries them.
        check_args(result.args, "the task's args")
        check_args(result.kwargs, "the task's kwargs")
        enqueued = datetime.now(timezone.utc)
        object.__setattr__(result, "enqueued_at", enqueued)
        self._remember(result, task, enqueued)
        job_class = RunAsyncTask if _is_async(task.func) else RunTask
        setter = job_class.set(queue=self.queue_for(task), jid=result.id, retry=self.retry,
                               store_result=True, result_ttl=self.result_ttl,
                               wrapped=task.module_path)
        job_args = (task.module_path, result.args, result.kwargs, self.alias)
        try:
            if task.run_after is not None:
                setter.perform_at(task.run_after, *job_args)
            else:
                setter.perform_async(*job_args)
        except Exception:
            # Not enqueued: get_result must not report it as waiting to run.
            with contextlib.suppress(Exception):
                connection.client().delete(keys.status(result.id))
            raise
        task_enqueued.send(type(self), task_result=result)
        return result

    def _remember(self, result: Any, task: Any, enqueued: datetime) -> None:
        """What get_result needs to rebuild the result, in the job's status hash (its state
        and return value are written there by the worker)."""
        key = keys.status(result.id)
        pipe = connection.client().pipeline(transaction=True)
        pipe.hset(key, mapping={TASK: task.module_path, ARGS: json.dumps(result.args),
                                KWARGS: json.dumps(result.kwargs), BACKEND: self.alias,
                                ENQUEUED: enqueued.isoformat(), "state": "queued"})
        pipe.expire(key, int(self.result_ttl))  # the push sets it again, past the run time
        # Redis down: the RedisUnavailable perform_async raises, not redis-py's own error.
        client._guarded(pipe.execute, None)

    def get_result(self, result_id: str) -> Any:
        fields = _read(keys.status(str(result_id)))
        if TASK not in fields:
            raise TaskResultDoesNotExist(result_id)
        # Read from the hash itself, not through JobStatus (which refuses the testing modes).
        stored = fields.get("result")
        return _result_from(str(result_id), fields, fields.get("state"),
                            json.loads(stored) if stored is not None else None)


def _priority_queues(alias: str, value: Any) -> list[tuple[int, str]]:
    try:
        pairs = sorted(((int(lowest), str(queue)) for lowest, queue in value), reverse=True)
    except (TypeError, ValueError):
        raise ConfigError(f"TASKS[{alias!r}]['OPTIONS']['PRIORITY_QUEUES'] must be a list of "
                          f"(lowest priority, queue name) pairs like [(50, 'critical')], "
                          f"got {value!r}") from None
    return pairs


def _is_async(func: Any) -> bool:
    import inspect  # noqa: PLC0415

    return inspect.iscoroutinefunction(func)


def _read(key: str) -> dict[str, str]:
    found = cast("dict[bytes, bytes]", connection.client().hgetall(key))
    return {k.decode(): v.decode("utf-8", "replace") for k, v in found.items()}


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _result_from(result_id: str, fields: dict[str, str], job_state: str | None,
                 value: Any) -> Any:
    task = import_string(fields[TASK])
    state = _STATES.get(job_state or "", TaskResultStatus.READY)
    workers = json.loads(fields.get(WORKERS, "[]"))
    started = _when(fields.get(STARTED))
    result = TaskResult(
        task=task, id=result_id, status=state,
        enqueued_at=_when(fields.get(ENQUEUED)), started_at=started,
        last_attempted_at=_when(fields.get("last_attempted_at")),
        finished_at=_when(fields.get(FINISHED)) if state in (
            TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED) else None,
        args=json.loads(fields.get(ARGS, "[]")), kwargs=json.loads(fields.get(KWARGS, "{}")),
        backend=fields.get(BACKEND, "default"),
        errors=[TaskError(exception_class_path=path, traceback=text)
                for path, text in json.loads(fields.get(ERRORS, "[]"))],
        worker_ids=workers)
    if state == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", value)
    return result


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _TaskRun:
    """One run of a task in the worker: its result as Django sees it, the signals, and the
    times, worker ids and errors written to the status hash."""

    def __init__(self, job: Job, path: str, args: list[Any], kwargs: dict[str, Any],
                 alias: str) -> None:
        self.key = keys.status(job.jid)
        fields = _read(self.key)
        fields.setdefault(TASK, path)
        now = datetime.now(timezone.utc)
        workers = [*json.loads(fields.get(WORKERS, "[]")), _worker_id()]
        fields.update({WORKERS: json.dumps(workers), "last_attempted_at": now.isoformat()})
        fields.setdefault(STARTED, now.isoformat())
        fields.setdefault(ARGS, json.dumps(args))
        fields.setdefault(KWARGS, json.dumps(kwargs))
        fields.setdefault(BACKEND, alias)
        connection.client().hset(self.key, mapping={
            k: fields[k] for k in (WORKERS, "last_attempted_at", STARTED)})
        self.fields = fields
        self.result = _result_from(job.jid, fields, "running", None)
        self.task = self.result.task
        self.args, self.kwargs = args, kwargs
        self.retried = _will_retry(job.payload)

    def call_args(self) -> tuple[list[Any], dict[str, Any]]:
        if self.task.takes_context:
            return [TaskContext(task_result=self.result), *self.args], self.kwargs
        return self.args, self.kwargs

    def started(self) -> None:
        task_started.send(type(self.task.get_backend()), task_result=self.result)

    def finished(self, error: BaseException | None, value: Any = None) -> None:
        now = datetime.now(timezone.utc)
        object.__setattr__(self.result, "finished_at", now)
        updates: dict[Any, Any] = {FINISHED: now.isoformat()}
        if error is None:
            object.__setattr__(self.result, "status", TaskResultStatus.SUCCESSFUL)
            object.__setattr__(self.result, "_return_value", value)
        else:
            kind = type(error)
            path = f"{kind.__module__}.{kind.__qualname__}"
            text = "".join(traceback.format_exception(error))
            errors = [*json.loads(self.fields.get(ERRORS, "[]")), [path, text]]
            updates[ERRORS] = json.dumps(errors)
            self.result.errors.append(TaskError(exception_class_path=path, traceback=text))
            if self.retried:  # not finished: it runs again, and reads READY meanwhile
                object.__setattr__(self.result, "status", TaskResultStatus.READY)
                connection.client().hset(self.key, mapping=updates)
                return
            object.__setattr__(self.result, "status", TaskResultStatus.FAILED)
        connection.client().hset(self.key, mapping=updates)
        task_finished.send(type(self.task.get_backend()), task_result=self.result)


def _will_retry(payload: dict[str, Any]) -> bool:
    """A failure of this attempt is retried (Sidekiq's count: the first retry is 0)."""
    allowed = retry.max_attempts(payload.get("retry"))
    done = payload.get("retry_count")
    attempt = done + 1 if isinstance(done, int) and not isinstance(done, bool) else 0
    return allowed is not None and attempt < allowed


class RunTask(Job):
    """Runs one Django task (a function decorated with ``@task``) in a worker thread."""

    name = "sidequest.contrib.django.RunTask"

    def perform(self, path: str, args: list[Any], kwargs: dict[str, Any],
                alias: str = "default") -> Any:
        run = _TaskRun(self, path, args, kwargs, alias)
        run.started()
        call_args, call_kwargs = run.call_args()
        try:
            # As Django's own backends do: a return value JSON cannot hold fails the task.
            value = normalize_json(run.task.call(*call_args, **call_kwargs))
        except BaseException as exc:  # SystemExit too: the worker records it as a failure
            run.finished(exc)
            raise
        run.finished(None, value)
        return value


class RunAsyncTask(Job):
    """Runs one ``async def`` Django task on the worker's event loop."""

    name = "sidequest.contrib.django.RunAsyncTask"

    async def perform(  # type: ignore[override]  # an async def job, as the worker allows
            self, path: str, args: list[Any], kwargs: dict[str, Any],
            alias: str = "default") -> Any:
        from asgiref.sync import sync_to_async  # noqa: PLC0415

        run = await sync_to_async(_TaskRun)(self, path, args, kwargs, alias)
        await sync_to_async(run.started)()
        call_args, call_kwargs = run.call_args()
        try:
            value = normalize_json(await run.task.acall(*call_args, **call_kwargs))
        except asyncio.CancelledError:
            raise  # a stop or a cancel: the job goes back or ends unrun, no failure
        except BaseException as exc:
            await sync_to_async(run.finished)(exc)
            raise
        await sync_to_async(run.finished)(None, value)
        return value
