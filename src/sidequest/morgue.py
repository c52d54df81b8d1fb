"""Adding to Sidekiq's dead set, with its trimming rules; shared by the worker and the API."""

from __future__ import annotations

from typing import Any

from sidequest import keys

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
