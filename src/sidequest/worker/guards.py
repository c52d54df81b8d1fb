"""The server middleware of the job options that act when a job runs: ``unique_for`` (release
the lock at start or after success) and ``expires_in`` (drop a job fetched too late). One
middleware for both, so that a job with neither pays two dict lookups, not two more levels
of the chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidequest import expiry, unique
from sidequest.payload import Payload


def server_middleware(job: Any, payload: Payload, queue: str,
                      call_next: Callable[[], Any]) -> Any:
    if unique.DIGEST not in payload and expiry.AT not in payload:
        return call_next()
    # Unique outside expiry: a job dropped as expired gives its lock back like one that ran.
    return unique.server_middleware(
        job, payload, queue, lambda: expiry.server_middleware(job, payload, queue, call_next))
