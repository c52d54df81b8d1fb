"""Adding to Sidekiq's dead set, with its trimming rules; shared by the worker and the API."""

from __future__ import annotations

import math
from typing import Any

import redis

from sidequest import keys
from sidequest.url_clients import CLUSTER_UNAVAILABLE

#: Sidekiq's defaults: the dead set keeps at most this many jobs, for at most this long.
DEAD_MAX_JOBS = 10_000
DEAD_TIMEOUT = 180 * 24 * 3600.0


def add_dead(
    pipe: Any, member: str | bytes, now: float, max_jobs: int = DEAD_MAX_JOBS,
    timeout: float = DEAD_TIMEOUT,
) -> None:
    """Queue on ``pipe``: ZADD to ``dead``, then drop entries older than ``timeout`` and all
    but the newest ``max_jobs`` (Sidekiq keeps at most max - 1 after its rank trim; we keep
    exactly ``max_jobs``)."""
    pipe.zadd(keys.DEAD, {member: now})
    pipe.zremrangebyscore(keys.DEAD, "-inf", now - timeout)
    pipe.zremrangebyrank(keys.DEAD, 0, -max_jobs - 1)


def publish(client: Any, max_jobs: int, timeout: float) -> None:
    """Write a starting worker's ``dead_max_jobs`` and ``dead_timeout`` where every process
    reads them: the dashboard and the API, which have no worker settings, trim the dead set
    by these (the last worker to start wins), not by Sidekiq's defaults."""
    client.hset(keys.DEAD_LIMITS, mapping={"max_jobs": max_jobs, "timeout": repr(timeout)})


def limits(client: Any) -> tuple[int, float]:
    """The published ``(max_jobs, timeout)`` of the dead set (``publish``); the defaults for
    a field missing or not a positive number (no worker started yet, or written by hand).
    One HMGET; a key of the wrong type reads as nothing published."""
    try:
        max_jobs, timeout = client.hmget(keys.DEAD_LIMITS, ["max_jobs", "timeout"])
    except redis.ResponseError as exc:
        # Only a key of another type is "nothing published": a refusal (an ACL without this
        # key, an outage) trimming by the defaults would delete what the workers keep.
        if isinstance(exc, CLUSTER_UNAVAILABLE) or not str(exc).startswith("WRONGTYPE"):
            raise
        return DEAD_MAX_JOBS, DEAD_TIMEOUT
    return _count(max_jobs), _seconds(timeout)


def _count(value: Any) -> int:
    try:
        number = int(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError, UnicodeDecodeError):
        return DEAD_MAX_JOBS
    return number if number > 0 else DEAD_MAX_JOBS


def _seconds(value: Any) -> float:
    try:
        number = float(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError, UnicodeDecodeError):
        return DEAD_TIMEOUT
    return number if math.isfinite(number) and number > 0 else DEAD_TIMEOUT
