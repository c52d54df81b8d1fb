"""How an ``async def perform`` job that does not end by itself counts: cancelled by
``sidequest.api.cancel`` it is done, not failed, in the stats, the dashboard's metrics and the
process's exporter, as a thread job that saw ``self.cancelled()`` and returned; cancelled by a
stop and pushed back it counts as neither processed nor failed. A timed-out one's failure
names the line where it was waiting. Real Redis, in-process workers."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from redis_server import free_port
from sidequest import Job
from sidequest.api import Queue, RetrySet, Stats, cancel, metrics
from sidequest.retry import decode_backtrace

started = threading.Event()


class Lingers(Job):
    async def perform(self, seconds: float) -> None:
        started.set()
        await asyncio.sleep(seconds)


class Dawdles(Job):
    timeout = 0.3
    retry = 1
    backtrace = True

    async def perform(self) -> None:
        await asyncio.sleep(30)  # where it waits when its time runs out


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    started.clear()


def counters(r: redis.Redis) -> dict[str, int]:
    """stat:processed and stat:failed, totals and summed over the per-day keys."""
    out = {}
    for kind in ("processed", "failed"):
        out[kind] = int(r.get(f"stat:{kind}") or 0)
        out[f"{kind} per day"] = sum(int(r.get(key) or 0) for key in r.keys(f"stat:{kind}:*"))
    return out


def exporting() -> dict[str, Any]:
    """Settings for the process's own exporter (--metrics-port), on loopback only."""
    return {"metrics_port": free_port(), "metrics_host": "127.0.0.1"}


def exported(launcher: Any, name: str) -> float:
    """A counter of the process's own exporter for Lingers on queue default (0 if unset)."""
    labels = {"class": Lingers.wire_name(), "queue": "default"}
    value = launcher.exporter.registry.get_sample_value(f"sidequest_worker_{name}_total", labels)
    return value or 0.0


def test_an_async_job_cancelled_while_it_runs_is_done_not_failed(
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sidequest")
    with running_worker(**exporting()) as launcher:
        jid = Lingers.perform_async(60.0)
        assert started.wait(10), "the job did not start"
        cancel(jid)
        wait_for(lambda: Stats().processed == 1, what="the cancelled run to be counted")
    assert counters(r) == {"processed": 1, "processed per day": 1,
                           "failed": 0, "failed per day": 0}
    recorded, _ = metrics.for_class(Lingers.wire_name())  # what the dashboard shows
    assert (recorded.processed, recorded.failed) == (1, 0)
    assert (exported(launcher, "processed"), exported(launcher, "failed")) == (1.0, 0.0)
    assert RetrySet().size == 0 and Queue("default").size == 0
    # Through the app's own logging (an embedded worker), the line leads with its job.
    lines = [(record.getMessage(), getattr(record, "jid", None)) for record in caplog.records]
    assert any(msg.startswith(f"class={Lingers.wire_name()} jid={jid} elapsed=")
               and msg.endswith(" done: cancelled") and at == jid
               for msg, at in lines), lines


def test_an_async_job_pushed_back_at_a_stop_is_not_counted(r: redis.Redis) -> None:
    with running_worker(timeout=0.5, **exporting()) as launcher:
        jid = Lingers.perform_async(60.0)
        assert started.wait(10), "the job did not start"
        assert launcher.stop() is False, "the job had to be pushed back"
    assert [j.jid for j in Queue("default")] == [jid]
    assert counters(r) == {"processed": 0, "processed per day": 0,
                           "failed": 0, "failed per day": 0}
    recorded, _ = metrics.for_class(Lingers.wire_name())
    assert (recorded.processed, recorded.failed) == (0, 0)
    assert (exported(launcher, "processed"), exported(launcher, "failed")) == (0.0, 0.0)


def waiting_line() -> int:
    """The line of Dawdles.perform that awaits."""
    lines, first = inspect.getsourcelines(Dawdles.perform)
    return first + next(i for i, text in enumerate(lines) if "asyncio.sleep" in text)


def test_a_timed_out_async_job_names_the_line_where_it_waited(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sidequest")
    Dawdles.perform_async()
    with running_worker():
        (entry,) = wait_for(lambda: list(RetrySet()), what="the timeout's failure")
    assert entry.item["error_class"].endswith("JobTimeout")
    where = f"{__file__}:{waiting_line()}"
    backtrace = decode_backtrace(entry.item["error_backtrace"])
    assert f"{where}:in `perform'" in backtrace
    # Innermost first: the job's frames before Sidequest's own, as in a thread job's.
    assert backtrace.index(f"{where}:in `perform'") < min(
        (i for i, line in enumerate(backtrace) if "/sidequest/" in line), default=len(backtrace)
    ), backtrace
    failures = [record.getMessage() for record in caplog.records
                if " fail: " in record.getMessage()]
    assert len(failures) == 1 and f"    {where} in perform\n" in failures[0], failures


class AwaitsACancelledTask(Job):
    retry = 1

    async def perform(self) -> None:
        other = asyncio.ensure_future(asyncio.sleep(30))
        other.cancel()
        await other  # its CancelledError: neither the API's cancel nor a stop


def test_a_cancelled_error_of_the_jobs_own_is_a_failure(r: redis.Redis) -> None:
    AwaitsACancelledTask.perform_async()
    with running_worker():
        wait_for(lambda: RetrySet().size == 1, what="the failure in the retry set")
        assert not any(r.llen(key) for key in r.keys("sq:inprogress:*")), "not left held"
    (entry,) = RetrySet().page()
    assert entry.error_class is not None and entry.error_class.endswith("CancelledError")
    assert counters(r)["failed"] == 1


class UniqueLingers(Job):
    unique_for = 600

    async def perform(self, seconds: float) -> None:
        started.set()
        await asyncio.sleep(seconds)


def test_a_unique_async_job_cancelled_while_it_runs_gives_its_identity_back() -> None:
    jid = UniqueLingers.perform_async(30)
    assert jid and UniqueLingers.perform_async(30) is None, "held while it waits"
    with running_worker():
        wait_for(started.is_set, what="the job to start")
        cancel(jid)
        wait_for(lambda: UniqueLingers.perform_async(30) is not None,
                 what="an identical push to get in once the cancelled one is done")
