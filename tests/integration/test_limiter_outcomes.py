"""How a run that a full rate limiter sends back ends: not as a success. Its log line is
``done: over limit``, and the process's exporter (``--metrics-port``) counts it as over limit,
not in the runs and the run-time histogram, where its few milliseconds would pass for fast
successful runs. Real Redis, an in-process worker."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from redis_server import free_port
from sidequest import Job, limiter
from sidequest.api import RetrySet, ScheduledSet, metrics

#: Held by each test while its worker runs: the jobs below find it full.
full = limiter.concurrent("outcome-full", 1)
quick_ran = threading.Event()


class ThreadOver(Job):
    def perform(self) -> None:
        with full:
            pass


class AsyncOver(Job):
    async def perform(self) -> None:
        async with full:
            pass


class Quick(Job):
    def perform(self) -> None:
        quick_ran.set()


@pytest.fixture(autouse=True)
def _held(redis_url: str) -> Any:
    quick_ran.clear()
    full.acquire()
    try:
        yield
    finally:
        full.release()


def exported(launcher: Any, name: str, job: type[Job]) -> float:
    labels = {"class": job.wire_name(), "queue": "default"}
    return launcher.exporter.registry.get_sample_value(f"sidequest_worker_{name}", labels) or 0.0


def run_all(**settings: Any) -> tuple[Any, dict[type[Job], str]]:
    """Push one of each and run a worker until both over-limit jobs are rescheduled and the
    quick one ran: the stopped worker (its metrics flushed) and the jids."""
    jids = {job: str(job.perform_async()) for job in (ThreadOver, AsyncOver, Quick)}
    with running_worker(**settings) as launcher:
        wait_for(lambda: ScheduledSet().size == 2 and quick_ran.is_set(),
                 what="two reschedules and a run")
    assert RetrySet().size == 0
    return launcher, jids


def test_an_over_limit_try_is_logged_as_such(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sidequest")
    _, jids = run_all()
    ends = {getattr(record, "jid", None): record.getMessage() for record in caplog.records
            if " done" in record.getMessage()}
    assert ends[jids[ThreadOver]].endswith(" done: over limit"), ends
    assert ends[jids[Quick]].endswith(" done"), ends
    # The reschedule's line is a job line too: its class and jid are fields (JSON logs).
    (line,) = [record for record in caplog.records if "rescheduled, try 1" in record.getMessage()
               and getattr(record, "jid", None) == jids[ThreadOver]]
    assert getattr(line, "class") == ThreadOver.wire_name()
    assert "over limit (outcome-full); rescheduled, try 1" in line.getMessage()


def test_an_async_over_limit_try_is_logged_as_such(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sidequest")
    _, jids = run_all()
    ends = {getattr(record, "jid", None): record.getMessage() for record in caplog.records
            if " done" in record.getMessage()}
    assert ends[jids[AsyncOver]].endswith(" done: over limit"), ends


def test_the_exporter_counts_over_limit_tries_apart_from_runs() -> None:
    launcher, _ = run_all(metrics_port=free_port(), metrics_host="127.0.0.1")
    for job in (ThreadOver, AsyncOver):
        assert exported(launcher, "processed_total", job) == 0, job
        assert exported(launcher, "job_duration_seconds_count", job) == 0, job
        assert exported(launcher, "overlimit_total", job) == 1, job
    assert exported(launcher, "processed_total", Quick) == 1
    assert exported(launcher, "job_duration_seconds_count", Quick) == 1
    assert exported(launcher, "overlimit_total", Quick) == 0


def test_the_dashboards_metrics_count_no_run_for_an_over_limit_try(r: redis.Redis) -> None:
    run_all()
    for job in (ThreadOver, AsyncOver):
        recorded, _ = metrics.for_class(job.wire_name())  # the Metrics page, /prometheus
        assert (recorded.processed, sum(recorded.histogram)) == (0, 0), job
    recorded, _ = metrics.for_class(Quick.wire_name())
    assert (recorded.processed, sum(recorded.histogram)) == (1, 1)
