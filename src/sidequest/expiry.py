"""Expiring jobs: a job not started by a deadline is dropped unrun.

``expires_in = seconds`` (a class option, ``@job`` or ``.set``) becomes the payload key
``expires_at``: the epoch by which the job must start, counted from its enqueue, or from its
run time for a scheduled job. The worker drops a job fetched after that moment: it is
acknowledged without running, counted in ``sq:stat:expired``, logged, and never retried. A
Ruby Sidekiq process ignores the key and runs the job.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import redis

from sidequest import connection, keys
from sidequest.payload import Payload, job_class

log = logging.getLogger("sidequest")

IN, AT = "expires_in", "expires_at"


def check_option(value: Any) -> str | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not math.isfinite(value) or value <= 0):
        return f"expires_in={value!r} is invalid; expected a number of seconds above 0"
    return None


def stamp(item: Payload) -> None:
    """Turn ``expires_in`` into ``expires_at`` in a normalized payload (in place)."""
    seconds = item.pop(IN, None)
    if seconds is None:
        return
    problem = check_option(seconds)
    if problem:
        raise ValueError(problem)
    start = item.get("at") or item["created_at"]
    item[AT] = float(start) + float(seconds)


def expired(payload: Payload, now: float) -> bool:
    deadline = payload.get(AT)
    return isinstance(deadline, (int, float)) and not isinstance(deadline, bool) and (
        now > deadline)


def server_middleware(job: Any, payload: Payload, queue: str,
                      call_next: Callable[[], Any]) -> Any:
    """Drops a job fetched after its ``expires_at``: not run, not a failure, counted."""
    if AT not in payload or not expired(payload, time.time()):
        return call_next()
    late = time.time() - float(payload[AT])
    log.warning("expired: %s %s was not started by its expires_at (%.1f s late); dropped "
                "unrun", job_class(payload), payload.get("jid"), late)
    try:
        connection.client().incr(keys.STAT_EXPIRED)
    except redis.RedisError as exc:
        log.warning("could not count an expired job: %s", exc)
    return None
