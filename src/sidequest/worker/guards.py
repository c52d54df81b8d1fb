"""The server middleware of what acts when a job runs: ``unique_for`` (release the lock at
start or after success), ``expires_in`` (drop a job fetched too late) and the limiters
(reschedule a job whose ``perform`` raised OverLimit). One middleware for all, so that a
plain job pays two dict lookups and a try block, not three more levels of the chain."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sidequest import expiry, unique
from sidequest.limiter import OverLimit
from sidequest.payload import Payload
from sidequest.worker import cancels, overlimit

log = logging.getLogger("sidequest")


class _Guards:
    def __call__(self, job: Any, payload: Payload, queue: str,
                 call_next: Callable[[], Any]) -> Any:
        if cancels.jids and _cancelled(payload):
            return None
        return _guard(job, payload, queue, call_next)

    async def acall(self, job: Any, payload: Payload, queue: str,
                    call_next: Callable[[], Awaitable[Any]]) -> Any:
        """The same around an ``async def perform`` job: the Redis writes (rare: a unique
        lock, an expired job, a full limiter) run off the event loop."""
        if cancels.jids and _cancelled(payload):
            return None
        try:
            if unique.DIGEST in payload or expiry.AT in payload:
                if expiry.AT in payload and expiry.expired(payload, time.time()):
                    await asyncio.to_thread(expiry.server_middleware, job, payload, queue,
                                            lambda: None)
                    await asyncio.to_thread(unique.release, payload)
                    return None
                if payload.get(unique.UNTIL) == "start":
                    await asyncio.to_thread(unique.release, payload)
                    return await call_next()
                result = await call_next()
                await asyncio.to_thread(unique.release, payload)
                return result
            return await call_next()
        except OverLimit as exc:
            await asyncio.to_thread(overlimit.reschedule, payload, queue, exc)
            return None


def _cancelled(payload: Payload) -> bool:
    """A job cancelled before it started: dropped (acknowledged, not run)."""
    jid = payload.get("jid")
    if not isinstance(jid, str) or not cancels.is_cancelled(jid):
        return False
    log.warning("cancelled: %s %s was not run", payload.get("class"), jid)
    return True


def _guard(job: Any, payload: Payload, queue: str, call_next: Callable[[], Any]) -> Any:
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


server_middleware = _Guards()
