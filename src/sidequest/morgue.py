"""Adding to Sidekiq's dead set, with its trimming rules; shared by the worker and the API."""

from __future__ import annotations

from typing import Any

from sidequest import keys


def add_dead(
    pipe: Any, member: str | bytes, now: float, max_jobs: int = 10_000, timeout: float = 180 * 86400
) -> None:
    """Queue on ``pipe``: ZADD to ``dead``, then drop entries older than ``timeout`` and all
    but the newest ``max_jobs`` (Sidekiq keeps at most max - 1 after its rank trim; we keep
    exactly ``max_jobs``)."""
    pipe.zadd(keys.DEAD, {member: now})
    pipe.zremrangebyscore(keys.DEAD, "-inf", now - timeout)
    pipe.zremrangebyrank(keys.DEAD, 0, -max_jobs - 1)
