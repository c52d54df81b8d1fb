"""The server middleware of what acts when a job runs: ``unique_for`` (release the lock at
start, or with the acknowledgement of a success), ``expires_in`` (drop a job fetched too
late), the limiters (reschedule a job whose ``perform`` raised OverLimit), cancellations
(drop a job cancelled before it started) and the bookkeeping of batches and stored
statuses around the job. One middleware for all, so that a plain job pays two dict lookups
and a try block, not three more levels of the chain."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sidequest import batch, batch_members, expiry, limiter, status, unique
from sidequest.limiter import OverLimit
from sidequest.payload import DROPPED, Payload, job_class
from sidequest.worker import cancels, overlimit, with_ack

log = logging.getLogger("sidequest")


class _Guards:
    def __call__(self, job: Any, payload: Payload, queue: str,
                 call_next: Callable[[], Any]) -> Any:
        if cancels.jids and _cancelled(payload):
            dropped(payload, "cancelled")
            unique.mark_success(payload)  # never to run: its lock goes with the ack
            return None
        return _guard(job, payload, queue, call_next)

    async def acall(self, job: Any, payload: Payload, queue: str,
                    call_next: Callable[[], Awaitable[Any]]) -> Any:
        """The same around an ``async def perform`` job: the Redis writes (a unique lock, a
        dropped job, a full limiter, a batch's or a stored status's record) run off the
        event loop."""
        if (cancels.jids and cancels.is_cancelled(str(payload.get("jid", "")))
                and await asyncio.to_thread(_cancelled, payload)):  # Redis asked, off the loop
            dropped(payload, "cancelled")  # recorded with the acknowledgement: no I/O here
            unique.mark_success(payload)
            return None
        run = _async_run(payload, call_next)
        try:
            if unique.DIGEST in payload or expiry.AT in payload:
                if expiry.AT in payload and expiry.expired(payload, time.time()):
                    # Its log and count off the loop; its record (no I/O) on it, where the
                    # job's acknowledgement takes it: from a thread it could come too late.
                    await asyncio.to_thread(_expired, job, payload, queue)
                    dropped(payload, "expired")
                    unique.mark_success(payload)  # its lock goes with the acknowledgement
                    return None
                if payload.get(unique.UNTIL) == "start":
                    await asyncio.to_thread(unique.release, payload)
                    return await run()
                result = await run()
                if unique.may_have_lapsed(payload):
                    await asyncio.to_thread(unique.note_lapse, payload)
                unique.mark_success(payload)  # released with the acknowledgement
                return result
            return await run()
        except OverLimit as exc:
            await asyncio.to_thread(overlimit.reschedule, payload, queue, exc)
            limiter.mark_rescheduled(payload)  # after: the entry rescheduled must not carry it
            return None
        finally:
            held = limiter.take_left()
            if held:  # acquire() without release(): else renewed as long as the process lives
                await asyncio.to_thread(limiter.give_back, held)


def _cancelled(payload: Payload) -> bool:
    """A job cancelled before it started: dropped (acknowledged, not run)."""
    jid = payload.get("jid")
    if not isinstance(jid, str) or not cancels.is_cancelled(jid) or not cancels.confirmed(jid):
        return False
    log.warning("cancelled: %s %s was not run", job_class(payload), jid)
    return True


_DROPPED = DROPPED


def done_line(payload: Payload) -> str:
    """The end line of a run that raised nothing: a bare "done" reads as a job done, which a
    reschedule by a full limiter, a drop before the start, or a cancellation it heeded is not
    (``done: cancelled`` is also an async job's that its CancelledError ended)."""
    if limiter.rescheduled(payload):
        return "done: over limit"
    dropped_as = payload.get(_DROPPED)
    if dropped_as is not None:
        return f"done: {dropped_as}, not run"
    if cancels.jids and cancels.is_cancelled(str(payload.get("jid", ""))):
        return "done: cancelled"
    return "done"


def dropped(payload: Payload, state: str) -> None:
    """A job that will never run ("cancelled" or "expired"): a page polling its stored status
    sees that it ended, and its batch counts it as done (a failure if it failed before)
    instead of waiting. Both are written with the acknowledgement."""
    payload[_DROPPED] = state
    if status.wanted(payload):
        with_ack.add(payload, lambda pipe: status.write(pipe, payload, state))
    if batch.PAYLOAD_KEY in payload:
        _record_with_ack(payload, batch.dropped_outcome(payload))


def _record_with_ack(payload: Payload, outcome: str) -> None:
    """The member's ``outcome`` goes to its batch with the acknowledgement."""
    ancestry = batch_members.ancestry_of(payload)
    if ancestry:
        jid = str(payload.get("jid", ""))
        with_ack.add(payload, lambda pipe: batch.queue_update(pipe, ancestry, jid, outcome))


def _drop_expired(job: Any, payload: Payload, queue: str) -> None:
    """Called once the job is known expired: expiry logs and counts it, unrun."""
    _expired(job, payload, queue)
    dropped(payload, "expired")


def _expired(job: Any, payload: Payload, queue: str) -> None:
    expiry.server_middleware(job, payload, queue, lambda: None)


def _guard(job: Any, payload: Payload, queue: str, call_next: Callable[[], Any]) -> Any:
    try:
        if (unique.DIGEST not in payload and expiry.AT not in payload
                and status.STORE not in payload and batch.PAYLOAD_KEY not in payload):
            return call_next()
        run = _sync_run(payload, call_next)
        # Unique outside expiry: a job dropped as expired gives its lock back like one that
        # ran. An OverLimit passes through both: a rescheduled job keeps its identity.
        return unique.server_middleware(
            job, payload, queue, lambda: _unless_expired(job, payload, queue, run))
    except OverLimit as exc:
        overlimit.reschedule(payload, queue, exc)
        # A try, not a run, to the timers outside and the worker's log line. Marked after the
        # reschedule, whose copy of the payload must not carry the mark.
        limiter.mark_rescheduled(payload)
        return None
    finally:
        held = limiter.take_left()
        if held:  # acquire() without release(): not this thread's next job's to hold
            limiter.give_back(held)


def _unless_expired(job: Any, payload: Payload, queue: str, run: Callable[[], Any]) -> Any:
    if expiry.AT in payload and expiry.expired(payload, time.time()):
        _drop_expired(job, payload, queue)
        return None
    return run()


def _sync_run(payload: Payload, call_next: Callable[[], Any]) -> Callable[[], Any]:
    """The job, inside the status and batch steps its payload asks for."""
    run = call_next
    if status.STORE in payload:
        run = lambda: _with_status(payload, call_next)  # noqa: E731
    if batch.PAYLOAD_KEY in payload:
        inner = run
        run = lambda: _in_batch(payload, inner)  # noqa: E731
    return run


def _async_run(payload: Payload,
               call_next: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    run = call_next
    if status.STORE in payload:
        run = lambda: _awith_status(payload, call_next)  # noqa: E731
    if batch.PAYLOAD_KEY in payload:
        inner = run
        run = lambda: _ain_batch(payload, inner)  # noqa: E731
    return run


def _in_batch(payload: Payload, call_next: Callable[[], Any]) -> Any:
    """A batch's job: its outcome is recorded in the batch (and its ancestors'), which may
    push their callbacks. A success (or a cancellation, done) is written with the job's
    acknowledgement, a failure with the failure's record (by the processor): never here,
    where a Redis error would become the job's own."""
    result = call_next()
    _record_with_ack(payload, "success")
    return result


async def _ain_batch(payload: Payload, call_next: Callable[[], Awaitable[Any]]) -> Any:
    try:
        result = await call_next()
    except asyncio.CancelledError:
        # By the API: stopped for good, done to its batch; by a stop: it runs again.
        if cancels.is_cancelled(str(payload.get("jid", ""))):
            _record_with_ack(payload, "success")
        raise
    _record_with_ack(payload, "success")
    return result


def _with_status(payload: Payload, call_next: Callable[[], Any]) -> Any:
    """A job that stores its result: running, then succeeded with the result (written with
    the acknowledgement), or scheduled again by a full limiter. A failure's status (retrying,
    or dead) is written with the failure's record, by the processor."""
    status.save(payload, "running")
    try:
        result = call_next()
    except OverLimit:
        status.save(payload, "scheduled")
        raise
    finally:
        # A sync job may run an event loop of its own (asyncio.run) and report progress
        # there, which goes through the background writer: written before its end is.
        status.later.wait()
    if cancels.is_cancelled(str(payload.get("jid", ""))):
        # Cancelled while it ran, it returned (having seen cancelled(), most often): ended
        # as an async job's CancelledError ends it, not as a success.
        with_ack.add(payload, lambda pipe: status.write(pipe, payload, "cancelled"))
        return result
    _succeeded(payload, result)
    return result


def _succeeded(payload: Payload, result: Any) -> None:
    text = status.result_text(result, payload)
    with_ack.add(payload, lambda pipe: status.write(pipe, payload, "succeeded", result=text))


async def _awith_status(payload: Payload, call_next: Callable[[], Awaitable[Any]]) -> Any:
    await asyncio.to_thread(status.save, payload, "running")
    try:
        result = await _and_progress_written(call_next)
    except OverLimit:
        await asyncio.to_thread(status.save, payload, "scheduled")
        raise
    except asyncio.CancelledError:
        # Cancelled by the API, it will not run again (written with its acknowledgement);
        # stopped at shutdown, it is pushed back to its queue (a time limit is JobTimeout,
        # not this): shielded, as the stop may cancel this task again meanwhile.
        if cancels.is_cancelled(str(payload.get("jid", ""))):
            with_ack.add(payload, lambda pipe: status.write(pipe, payload, "cancelled"))
        else:
            await asyncio.shield(asyncio.to_thread(status.save, payload, "queued"))
        raise
    _succeeded(payload, result)
    return result


async def _and_progress_written(call_next: Callable[[], Awaitable[Any]]) -> Any:
    """The job, then the progress it reported (written in the background from its event
    loop) written before its end is: else its "running" could land after "succeeded"."""
    try:
        return await call_next()
    finally:
        if status.later.pending():
            await asyncio.shield(asyncio.to_thread(status.later.wait))


server_middleware = _Guards()
