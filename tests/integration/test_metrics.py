"""Execution metrics: the server middleware counts in memory and flushes to ``sq:metrics:*``;
the reader sums them per class over 1, 8 and 24 hours."""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job, metrics, middleware
from sidequest.api import metrics as reader
from sidequest.payload import job_class

NOON = calendar.timegm((2026, 3, 14, 12, 5, 30, 0, 0, 0))  # 2026-03-14 12:05:30 UTC


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOON)


@pytest.fixture
def recorder(clock: Clock, redis_url: str) -> Iterator[metrics.Recorder]:
    rec = metrics.Recorder(interval=3600, clock=clock)
    yield rec
    rec.close()


def test_buckets_follow_sidekiqs_bounds() -> None:
    assert metrics.bucket(0) == 0 and metrics.bucket(19.9) == 0
    assert metrics.bucket(20) == 1  # the first bound greater than the duration
    assert metrics.bucket(335_000) == metrics.BUCKETS - 1 and metrics.bucket(10**9) == 25
    assert job_class({"class": "Wrapper", "wrapped": "RealJob"}) == "RealJob"
    assert job_class({"class": "Plain"}) == "Plain"
    # Free text in "wrapped" would forge a log line's fields (or a line of its own).
    for forged in ("app.Shown jid=forged elapsed=0.001", "X]\nCRITICAL forged", ""):
        assert job_class({"class": "Wrapper", "wrapped": forged}) == "Wrapper"
    assert job_class({"class": "W", "wrapped": "Mailer::Deliver"}) == "Mailer::Deliver"


def test_middleware_counts_runs_failures_and_time(recorder: metrics.Recorder,
                                                  r: redis.Redis) -> None:
    payload: dict[str, Any] = {"class": "app.Report", "args": []}
    assert recorder(None, payload, "default", lambda: "done") == "done"
    with pytest.raises(ValueError, match="boom"):
        recorder(None, payload, "default", _raise)
    assert r.keys("sq:metrics:*") == []  # nothing written until a flush
    assert recorder.flush() > 0
    minute = r.hgetall("sq:metrics:1m:202603141205")
    assert minute["app.Report|p"] == "2" and minute["app.Report|f"] == "1"
    assert int(minute["app.Report|ms"]) < 50
    assert r.hgetall("sq:metrics:10m:20260314120")["app.Report|p"] == "2"
    assert r.hgetall("sq:metrics:hist:20260314120") == {"app.Report|0": "1"}
    assert 0 < r.ttl("sq:metrics:1m:202603141205") <= metrics.MINUTE_TTL
    assert metrics.MINUTE_TTL < r.ttl("sq:metrics:10m:20260314120") <= metrics.TEN_MINUTE_TTL
    assert recorder.flush() == 0  # nothing left over


def _raise() -> None:
    raise ValueError("boom")


def test_counts_survive_a_redis_error(recorder: metrics.Recorder, r: redis.Redis) -> None:
    recorder.record("app.Report", 30.0, failed=False)
    dead = redis.Redis(port=1, socket_connect_timeout=0.2)  # nothing listens there
    assert recorder.flush(dead) == 0
    recorder.record("app.Report", 30.0, failed=False)
    recorder.flush()
    assert r.hget("sq:metrics:1m:202603141205", "app.Report|p") == "2"
    assert r.hget("sq:metrics:hist:20260314120", "app.Report|2") == "2"


def test_pending_counts_are_bounded(recorder: metrics.Recorder,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_PENDING", 10)
    for i in range(100):
        recorder.record(f"Class{i}", 1.0, failed=False)
    assert len(recorder._pending) <= 10 + 5  # one record adds at most five fields


def test_background_thread_flushes(r: redis.Redis, redis_url: str) -> None:
    rec = metrics.Recorder(interval=0.05)
    try:
        rec.record("app.Quick", 1.0, failed=False)
        wait_for(lambda: r.keys("sq:metrics:1m:*"), 5, "the flusher thread")
    finally:
        rec.close()


def test_reader_sums_per_period(recorder: metrics.Recorder, clock: Clock) -> None:
    for minutes_ago, ms in ((0, 10.0), (30, 100.0), (120, 1000.0), (600, 5000.0)):
        clock.now = NOON - minutes_ago * 60
        recorder.record("app.Report", ms, failed=False)
    clock.now = NOON - 30 * 60
    recorder.record("app.Report", 0, failed=True)
    recorder.record("app.Other", 7.0, failed=False)
    recorder.flush()
    hour = {m.name: m for m in reader.summary("1h", now=NOON)}
    assert (hour["app.Report"].processed, hour["app.Report"].failed) == (3, 1)
    assert hour["app.Report"].total_ms == 110 and hour["app.Report"].average_ms == 55
    eight = {m.name: m for m in reader.summary("8h", now=NOON)}
    assert eight["app.Report"].processed == 4 and eight["app.Report"].total_ms == 1110
    day = reader.summary("24h", now=NOON)
    assert [m.name for m in day] == ["app.Report", "app.Other"]
    assert day[0].processed == 5 and day[0].total_ms == 6110
    assert [m.name for m in reader.summary("24h", now=NOON, substring="OTH")] == ["app.Other"]
    assert reader.summary("1h", now=NOON + 3 * 3600) == []


def test_sub_millisecond_runs_add_up(recorder: metrics.Recorder, clock: Clock) -> None:
    # Each run was rounded to whole milliseconds: 1,000 runs of 0.4 ms counted 0 ms.
    clock.now = NOON
    for _ in range(1000):
        recorder.record("app.Quick", 0.4, failed=False)
    recorder.flush()
    (quick,) = reader.summary("1h", now=NOON)
    assert quick.total_ms == 400


def test_reader_for_one_class(recorder: metrics.Recorder, clock: Clock) -> None:
    for ms in (5.0, 25.0, 25.0, 400.0):
        recorder.record("app.Report", ms, failed=False)
    clock.now = NOON - 3 * 3600
    recorder.record("app.Report", 90_000.0, failed=False)
    recorder.flush()
    totals, series = reader.for_class("app.Report", "1h", now=NOON)
    assert len(series) == 60 and series[-1].processed == 4 and series[0].processed == 0
    assert totals.processed == 4 and totals.histogram[:9] == [1, 2, 0, 0, 0, 0, 0, 0, 1]
    totals, series = reader.for_class("app.Report", "8h", now=NOON)
    assert len(series) == 48 and totals.processed == 5
    assert totals.histogram[metrics.bucket(90_000)] == 1
    assert reader.slots("24h", now=NOON)[-1][1] == "sq:metrics:10m:20260314120"
    assert reader.slots("1h", now=NOON)[0][1] == "sq:metrics:1m:202603141106"


class Measured(Job):
    queue = "metrics"

    def perform(self, fail: bool) -> None:
        if fail:
            raise RuntimeError("measured failure")


def test_installed_in_a_worker(r: redis.Redis) -> None:
    """What the worker does: prepend the process-wide recorder; runs then show up."""
    middleware.server.prepend(metrics.recorder)
    try:
        with running_worker(queues=(("metrics", 1),)):
            Measured.perform_async(False)
            Measured.perform_async(True)
            name = Measured.__module__ + ".Measured"

            def counted() -> Any:
                metrics.recorder.flush()
                measured, _ = reader.for_class(name, "1h")
                return measured if measured.processed == 2 else None

            measured = wait_for(counted, 10, "metrics of two runs")
            assert measured.failed == 1 and sum(measured.histogram) == 1
    finally:
        middleware.server.remove(metrics.recorder)
        metrics.recorder.close()


class MetricsExpires(Job):
    expires_in = 0.05

    def perform(self) -> None:
        pass


class MetricsRuns(Job):
    def perform(self) -> None:
        pass


def test_a_job_dropped_unrun_is_no_run_of_its_class(r: redis.Redis) -> None:
    """An expired job counted as a run of a few microseconds: a fast success in the class's
    counts, times and histogram, where nothing ran."""
    MetricsExpires.perform_async()
    wait_for(lambda: _expired(r), what="the job's deadline to pass")
    MetricsRuns.perform_async()
    with running_worker():
        wait_for(lambda: int(r.get("stat:processed") or 0) == 2, what="both jobs fetched")
    metrics.recorder.flush()
    counted = {m.name: m.processed for m in reader.summary("1h")}
    assert counted.get(job_class({"class": MetricsRuns.wire_name()})) == 1
    assert job_class({"class": MetricsExpires.wire_name()}) not in counted, counted


def _expired(r: redis.Redis) -> bool:
    (raw,) = r.lrange("queue:default", 0, -1)
    return time.time() > json.loads(raw)["expires_at"]


def test_a_middleware_whose_given_up_raises_stops_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    """An application's middleware with a given_up of its own making raised, and the stuck
    job's failure, recorded after it, never was."""
    told: list[str] = []

    class Strict:
        def given_up(self) -> None:  # takes none of the arguments
            raise AssertionError("not called like this")

    class Listening:
        def given_up(self, payload: dict[str, Any], queue: str, error: BaseException) -> None:
            told.append(queue)

    metrics.given_up({"class": "X", "jid": "s" * 24}, "low", [Strict(), Listening()],
                     RuntimeError("stuck"))
    assert told == ["low"]
    assert "raised in given_up" in caplog.text
