"""A failure whose outcome cannot be written at a stop (Redis unreachable past the deadline):
the job stays in the in-progress list and runs again, so no death is reported for it."""

from __future__ import annotations

import threading
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_server import free_port
from sidequest import hooks
from sidequest.config import build
from sidequest.payload import dumps
from sidequest.worker.fetch import Work
from sidequest.worker.processor import Processor
from sidequest.worker.state import ProcessState


def test_no_death_is_reported_for_a_failure_that_was_not_written() -> None:
    unreachable = redis.Redis(port=free_port(), socket_connect_timeout=0.5,
                              retry=Retry(NoBackoff(), 0))  # refused at once
    stopping = threading.Event()
    stopping.set()  # a stop: the write gives up instead of retrying
    processor = Processor(build(), "host:1:abc", unreachable, ProcessState(), stopping)
    job: dict[str, Any] = {"class": "Gone", "args": [], "jid": "a" * 24, "queue": "default",
                           "retry": False}
    deaths: list[str] = []

    def handler(payload: dict[str, Any], exc: BaseException) -> None:
        deaths.append(payload["jid"])

    hooks.on_death(handler)
    try:
        processor.failed(Work("default", dumps(job).encode()), job, LookupError("x"), None)
    finally:
        hooks.death_handlers.remove(handler)
    assert deaths == []
