"""Expiring jobs (``expires_in``): a job fetched after its deadline is dropped unrun,
counted, logged once and never retried; one fetched in time runs."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import redis

from helpers import running_worker, wait_for
from sidequest import Job, keys
from sidequest.api import DeadSet, Queue, RetrySet, ScheduledSet, Stats
from sidequest.errors import ConfigError
from sidequest.monitor import render_stats

ran: list[Any] = []


class Report(Job):
    expires_in = 0.2

    def perform(self, name: str) -> None:
        ran.append(name)


@pytest.fixture(autouse=True)
def _fresh(redis_url: str) -> None:
    ran.clear()


def test_a_job_fetched_after_its_deadline_is_dropped_and_counted(
    r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    Report.perform_async("stale")
    (entry,) = list(Queue("default"))
    deadline = entry.item["expires_at"]
    assert deadline == pytest.approx(entry.item["created_at"] + 0.2)
    wait_for(lambda: time.time() > deadline + 0.05, what="the deadline to pass")
    fresh = Report.set(expires_in=60).perform_async("fresh")
    with caplog.at_level(logging.WARNING, "sidequest"), running_worker():
        wait_for(lambda: ran == ["fresh"] and r.get(keys.STAT_EXPIRED) == "1",
                 what="the fresh job to run and the stale one to be counted")
        wait_for(lambda: Queue("default").size == 0, what="the queue to empty")
    assert fresh and RetrySet().size == 0 and DeadSet().size == 0
    assert Stats().expired == 1 and "Expired: 1" in render_stats()[1]
    lines = [rec.getMessage() for rec in caplog.records if "expired" in rec.getMessage()]
    assert len(lines) == 1 and entry.jid in lines[0]


def test_a_scheduled_job_expires_from_its_run_time() -> None:
    at = time.time() + 3600
    Report.set(expires_in=30).perform_at(at, "later")
    (entry,) = list(ScheduledSet())
    assert entry.item["expires_at"] == pytest.approx(at + 30)
    assert "expires_in" not in entry.item


def test_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="expires_in=0 is invalid"):
        Report.set(expires_in=0)
