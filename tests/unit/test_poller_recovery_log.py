"""The scheduler and the reaper say when Redis answers again after an error: otherwise the
last line of theirs in the log, after a failover, was that they would retry."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sidequest.config import build
from sidequest.worker.reaper import Reaper
from sidequest.worker.scheduler import Scheduler


def _flaky(stopping: threading.Event) -> Any:
    """Raises a RedisError at its first call, answers at its second, then stops the loop."""
    calls: list[int] = []

    def step() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise redis.ConnectionError("Error 111 connecting to 10.0.0.1:7000")
        stopping.set()
        return 0

    return step


@pytest.mark.parametrize("part", ["scheduler", "reaper"])
def test_the_poller_says_redis_is_back(part: str, caplog: pytest.LogCaptureFixture) -> None:
    config = build(poll_interval=0.01, reaper_interval=0.01, initial_poll_wait=0)
    stopping = threading.Event()
    # Nothing listens there; refused at once, not retried.
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.1, retry=Retry(NoBackoff(), 0))
    poller: Any = (Scheduler(config, unreachable, stopping) if part == "scheduler"
                   else Reaper(config, "me:1:abc", unreachable, stopping))
    if part == "scheduler":
        poller.enqueue_due = _flaky(stopping)
    else:
        poller.reap = _flaky(stopping)
    with caplog.at_level(logging.WARNING, logger="sidequest"):
        thread = threading.Thread(target=poller.run)
        thread.start()
        thread.join(10)
    assert not thread.is_alive()
    said = [record.getMessage() for record in caplog.records]
    assert said[0].startswith(f"{part}: Redis error, will retry")
    assert said[-1] == f"{part}: Redis is reachable again", said
