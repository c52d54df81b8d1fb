"""Expiring jobs against a real redis-server and an in-process worker: a job not started
within ``expires_in`` of its push (or its run time) is dropped when fetched, counted, logged
once and never retried; a job in time runs."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import ConfigError, Job, job, monitor
from sidequest.api import Stats

LOCK = threading.Lock()
RAN: list[Any] = []


@pytest.fixture(autouse=True)
def _clean() -> None:
    with LOCK:
        RAN.clear()


class Notify(Job):
    expires_in = 0.3

    def perform(self, value: Any) -> None:
        with LOCK:
            RAN.append(value)


class NotifyUnique(Notify):
    unique_for = 60

    def perform(self, value: Any) -> None:
        super().perform(value)


@job(expires_in=3600)
def patient(value: Any) -> None:
    with LOCK:
        RAN.append(value)


def ran() -> list[Any]:
    with LOCK:
        return list(RAN)


def deadline_of(r: redis.Redis, raw: str) -> float:
    return float(json.loads(raw)["sq_expires_at"])


def test_payload_carries_the_deadline(r: redis.Redis) -> None:
    before = time.time()
    Notify.perform_async(1)
    (raw,) = r.lrange("queue:default", 0, -1)
    assert before + 0.3 <= deadline_of(r, raw) <= time.time() + 0.3
    assert "expires_in" not in json.loads(raw)
    at = time.time() + 600
    Notify.set(expires_in=60).perform_at(at, 2)
    (scheduled,) = r.zrange("schedule", 0, -1)
    assert deadline_of(r, scheduled) == pytest.approx(at + 60)  # counted from the run time


def test_expired_job_is_dropped_counted_logged_once_never_retried(
    r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    late = Notify.perform_async("late")
    NotifyUnique.perform_async("late-unique")
    wait_for(lambda: time.time() > deadline_of(r, r.lrange("queue:default", 0, 0)[0]),
             what="the deadlines to pass")
    caplog.set_level(logging.WARNING, logger="sidequest")
    with running_worker(concurrency=2) as worker:
        in_time = patient.perform_async("in time")
        wait_for(lambda: ran() == ["in time"], what="the job in time to run")
        wait_for(lambda: r.get("sq:stat:expired") == "2", what="two expired jobs counted")
        wait_for(lambda: r.llen(f"sq:inprogress:{worker.identity}") == 0, what="acks")
    assert in_time is not None and ran() == ["in time"]
    assert r.llen("queue:default") == 0
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0 and r.zcard("schedule") == 0
    lines = [rec.getMessage() for rec in caplog.records if rec.getMessage().startswith("expired")]
    assert len(lines) == 2 and sum(str(late) in line for line in lines) == 1
    # The unique job's lock went with it: it can be pushed again.
    assert not list(r.scan_iter("sq:unique:*"))
    assert Stats().expired == 2 and Stats().as_dict()["expired"] == 2
    out = io.StringIO()
    assert monitor.main("stats", [], out) == 0
    assert "Expired: 2" in out.getvalue()


def test_a_job_in_time_runs_and_counts_nothing(r: redis.Redis) -> None:
    Notify.set(expires_in=60).perform_async("fresh")
    with running_worker(concurrency=2):
        wait_for(lambda: ran() == ["fresh"], what="the job to run")
    assert r.get("sq:stat:expired") is None and Stats().expired == 0


def test_bad_expires_in_is_refused(r: redis.Redis) -> None:
    with pytest.raises(ConfigError, match="expires_in"):
        Notify.set(expires_in=0)
    with pytest.raises(ConfigError, match="expires_in"):
        Notify.set(expires_in="1h")
    assert r.dbsize() == 0
