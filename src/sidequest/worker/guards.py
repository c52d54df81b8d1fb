"""The server middleware of what acts when a job runs: ``unique_for`` (release the lock at
start or after success), ``expires_in`` (drop a job fetched too late) and the limiters
(reschedule a job whose ``perform`` raised OverLimit). One middleware for all, so that a
plain job pays two dict lookups and a try block, not three more levels of the chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidequest import expiry, unique
from sidequest.limiter import OverLimit
from sidequest.payload import Payload
from sidequest.worker import overlimit


def server_middleware(job: Any, payload: Payload, queue: str,
                      call_next: Callable[[], Any]) -> Any:
    try:
        if unique.DIGEST not in payload and expiry.AT not in payload:
            return call_next()
        # Unique outside expiry: a job dropped as expired gives its lock back like one that
        # ran. An OverLimit passes through both: a rescheduled job keeps its identity.
        return unique.server_middleware(
            job, payload, queue,
            lambda: expiry.server_middleware(job, payload, queue, call_next))
    except OverLimit as exc:
        overlimit.reschedule(payload, queue, exc)
        return None
