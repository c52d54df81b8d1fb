"""The server middleware of what acts when a job runs: ``unique_for`` (release the lock at
start, or with the acknowledgement of a success), ``expires_in`` (drop a job fetched too
late) and the limiters (reschedule a job whose ``perform`` raised OverLimit). One middleware
for all, so that a plain job pays two dict lookups and a try block, not three more levels of
the chain."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sidequest import batch, expiry, status, unique
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
        run = call_next
        if status.STORE in payload:
            run = lambda: _awith_status(payload, call_next)  # noqa: E731
        try:
            if unique.DIGEST in payload or expiry.AT in payload:
                if expiry.AT in payload and expiry.expired(payload, time.time()):
                    await asyncio.to_thread(expiry.server_middleware, job, payload, queue,
                                            lambda: None)
                    unique.mark_success(payload)  # its lock goes with the acknowledgement
                    return None
                if payload.get(unique.UNTIL) == "start":
                    await asyncio.to_thread(unique.release, payload)
                    return await run()
                result = await run()
                unique.mark_success(payload)  # released with the acknowledgement
                return result
            return await run()
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
        if (unique.DIGEST not in payload and expiry.AT not in payload
                and status.STORE not in payload and batch.PAYLOAD_KEY not in payload):
            return call_next()
        run = call_next
        if status.STORE in payload:
            run = lambda: _with_status(payload, call_next)  # noqa: E731
        if batch.PAYLOAD_KEY in payload:
            inner = run
            run = lambda: _in_batch(payload, inner)  # noqa: E731
        # Unique outside expiry: a job dropped as expired gives its lock back like one that
        # ran. An OverLimit passes through both: a rescheduled job keeps its identity.
        return unique.server_middleware(
            job, payload, queue, lambda: expiry.server_middleware(job, payload, queue, run))
    except OverLimit as exc:
        overlimit.reschedule(payload, queue, exc)
        return None


def _in_batch(payload: Payload, call_next: Callable[[], Any]) -> Any:
    """A batch's job: its outcome is recorded in the batch (and its ancestors'), which may
    push their callbacks. A full limiter is neither: the job will run again."""
    ancestry = batch.ancestry_of(payload)
    jid = str(payload.get("jid", ""))
    try:
        result = call_next()
    except OverLimit:
        raise
    except BaseException:
        if ancestry:
            batch.update(ancestry, jid, "failure")
        raise
    if ancestry:
        batch.update(ancestry, jid, "success")
    return result


def _with_status(payload: Payload, call_next: Callable[[], Any]) -> Any:
    """A job that stores its result: running, then succeeded with the result, or retrying
    (the death handler makes it dead), or scheduled again by a full limiter."""
    status.save(payload, "running")
    try:
        result = call_next()
    except OverLimit:
        status.save(payload, "scheduled")
        raise
    except BaseException:
        status.save(payload, "retrying")
        raise
    status.save(payload, "succeeded", result=status.result_text(result))
    return result


async def _awith_status(payload: Payload, call_next: Callable[[], Awaitable[Any]]) -> Any:
    await asyncio.to_thread(status.save, payload, "running")
    try:
        result = await call_next()
    except OverLimit:
        await asyncio.to_thread(status.save, payload, "scheduled")
        raise
    except BaseException:
        await asyncio.to_thread(status.save, payload, "retrying")
        raise
    await asyncio.to_thread(status.save, payload, "succeeded",
                            result=status.result_text(result))
    return result


server_middleware = _Guards()
