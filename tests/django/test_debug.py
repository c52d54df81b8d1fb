"""A worker under ``DEBUG = True``: Django logs every query of a connection in its
``queries_log`` (up to 9,000), and a request empties it as it starts; a job must too, or each
worker thread keeps thousands of old queries for good. The worker says at its start that
DEBUG costs it memory and speed."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from conftest import start_worker, stop_worker
from helpers import Output, wait_for
from redis_server import RedisServer
from sidequest.contrib.django.management.commands.sidequest import DEBUG_WARNING

pytestmark = pytest.mark.usefixtures("events")

#: Queries the first job of each pair runs: far more than the next job's own few.
QUERIES = 40


def logged(key: str) -> tuple[int, int]:
    """What job ``key`` saw: its connection's logged queries at its start, and at its end."""
    from shop.models import Event

    def found() -> list[str]:
        return list(Event.objects.filter(kind="queries-logged", key=key)
                    .values_list("value", flat=True))

    (value,) = wait_for(found, 30, f"job {key}'s row")
    before, after = value.split(",")
    return int(before), int(after)


def test_each_job_starts_with_an_empty_query_log(project: Path,
                                                 redis_server: RedisServer) -> None:
    from shop.jobs import LogQueries, LogQueriesAsync

    # One thread (-c 1): the second job of each pair runs where the first logged its
    # queries (for async jobs, the one thread Django's async ORM calls run in).
    proc = start_worker(project, redis_server.url, "-c", "1", "-q", "debug",
                        settings="djproject.settings_debug")
    try:
        for job, name in ((LogQueries, "sync"), (LogQueriesAsync, "async")):
            job.set(queue="debug").perform_async(f"{name}-first", QUERIES)
            _, after = logged(f"{name}-first")
            assert after >= QUERIES  # DEBUG is on: the queries were logged
            # Pushed once the first has finished: it runs next, in the same thread.
            job.set(queue="debug").perform_async(f"{name}-next", 0)
            # Before: it started with the first job's queries still logged (QUERIES and
            # more), and every job added its own, up to 9,000 a thread.
            assert logged(f"{name}-next") == (0, 0), name
    finally:
        out = stop_worker(proc)
    assert out.count(DEBUG_WARNING) == 1, out


def test_no_debug_warning_without_debug(project: Path, redis_server: RedisServer) -> None:
    proc = start_worker(project, redis_server.url, "-c", "1", "-q", "debug")
    out = Output(proc)
    try:
        out.wait_for("started: ", 30)  # past the point where the warning is printed
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert not any("settings.DEBUG" in line for line in out.lines), out.lines
