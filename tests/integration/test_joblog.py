"""sidequest.joblog.JobFields: an application's own log lines made while a job runs carry
its jid, class and queue (a thread job's and an async job's alike), and empty strings
outside a job. Real Redis, an in-process worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from helpers import running_worker, wait_for
from sidequest import Job
from sidequest.joblog import JobFields

app_log = logging.getLogger("app.joblog-test")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.addFilter(JobFields())
        self.setFormatter(logging.Formatter("%(job_class)s|%(jid)s|%(queue)s|%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class LogsInAThread(Job):
    queue = "joblog"

    def perform(self) -> None:
        app_log.warning("from a thread job")


class LogsOnTheLoop(Job):
    queue = "joblog"

    async def perform(self) -> None:
        await asyncio.sleep(0)
        app_log.warning("from an async job")


@pytest.fixture
def collected() -> Iterator[Collect]:
    handler = Collect()
    app_log.addHandler(handler)
    try:
        yield handler
    finally:
        app_log.removeHandler(handler)


def test_app_log_lines_carry_the_running_jobs_fields(redis_url: str, collected: Collect) -> None:
    thread_jid = LogsInAThread.perform_async()
    async_jid = LogsOnTheLoop.perform_async()
    with running_worker(queues=(("joblog", 1),)):
        wait_for(lambda: len(collected.lines) == 2, what="both jobs' log lines")
    app_log.warning("outside any job")
    assert f"{LogsInAThread.wire_name()}|{thread_jid}|joblog|from a thread job" in collected.lines
    assert f"{LogsOnTheLoop.wire_name()}|{async_jid}|joblog|from an async job" in collected.lines
    assert collected.lines[-1] == "|||outside any job"


def test_a_wrapped_jobs_lines_name_the_job_it_wraps(redis_url: str, collected: Collect,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    # A django.tasks task (or an ActiveJob) runs inside a wrapper class: its lines said only
    # the wrapper's name (sidequest.contrib.django.RunTask), as Sidekiq's do not.
    caplog.set_level("INFO", logger="sidequest")
    jid = LogsInAThread.set(wrapped="reports.tasks.add").perform_async()
    with running_worker(queues=(("joblog", 1),)):
        wait_for(lambda: any(r.__dict__.get("jid") == jid and r.getMessage().endswith("done")
                             for r in caplog.records), what="the job's done line")
    assert {r.__dict__.get("class") for r in caplog.records
            if r.name == "sidequest" and r.__dict__.get("jid") == jid} == {"reports.tasks.add"}
    assert f"reports.tasks.add|{jid}|joblog|from a thread job" in collected.lines
