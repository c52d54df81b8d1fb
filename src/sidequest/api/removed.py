"""What a job taken out of Redis by hand (the dashboard, the API) leaves behind.

A worker's guards record a job's end: its unique identity goes back, its stored status says
how it ended, its batch counts it. A job deleted from a queue or a set, or killed before it
ran, never reaches a worker, so the hand that removed it records that end instead; without
it a batch would wait for the job for good, and a status would say "queued" or "retrying"
for a job that will never run.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import redis

from sidequest import batch, batch_members, connection, keys, status, unique
from sidequest.api.lenient import outages_raised
from sidequest.errors import PayloadError, RedisUnavailable
from sidequest.payload import Payload, decode

#: Seconds a cleared queue's or set's jobs are kept while their removal is recorded: gone by
#: then even if the process clearing it died on the way.
CLEARED_KEEP = 3600
#: Seconds a removal's record is retried through a Redis outage before it says so.
OUTAGE_WAIT = 30.0
#: Only a payload holding one of these leaves something to record when it is removed (a
#: batch, a stored status, a unique lock): the others are not parsed.
MARKERS = (b'"sq_batch"', b'"store_result"', unique.DIGEST.encode())


def never_runs(item: Payload) -> None:
    """The job was deleted from a queue, the schedule or the retry set: cancelled, to its
    status; done to its batch, a failure if it failed before (as a retry deleted)."""
    ended([item], "cancelled")


def killed(item: Payload) -> None:
    """The job was moved to the dead set by hand: dead, to its status; a failure, to its
    batch (recorded again for a retry, which changes nothing)."""
    ended([item], "dead")


def ended(items: list[Payload], state: str, held: str | None = None) -> None:
    """Record the ends of ``items`` ("cancelled" or "dead"), in one pipeline (``held`` is
    where the rest of a clearing's jobs are kept, for the error if Redis stops answering)."""
    def commands(pipe: Any) -> None:
        for item in items:
            _queue_end(pipe, item, state)

    if items:
        _record(commands, held)


def _queue_end(pipe: Any, item: Payload, state: str) -> None:
    """Queue on ``pipe`` what a job removed unrun leaves to record ("cancelled" or "dead"):
    its unique lock's release, its stored status, its batch's count."""
    if isinstance(item.get(unique.DIGEST), str) and isinstance(item.get("jid"), str):
        unique.release_in(pipe, item)
    if status.wanted(item):
        status.write(pipe, item, state)
    ancestry = batch_members.ancestry_of(item)
    if ancestry:
        outcome = "failure" if state == "dead" else batch.dropped_outcome(item)
        batch.queue_update(pipe, ancestry, str(item.get("jid", "")), outcome)


def _record(commands: Callable[[Any], None], held: str | None = None) -> None:
    """Send ``commands`` in one pipeline, again through a Redis outage (each is idempotent)
    for up to ``OUTAGE_WAIT`` seconds; then raise a RedisUnavailable that says what was not
    recorded (and, for a clearing, where the rest of its jobs are kept)."""
    delay, waited = 0.05, 0.0
    while True:
        pipe = connection.client().pipeline(transaction=False)
        commands(pipe)
        if not len(pipe):
            return
        try:
            pipe.execute()
            return
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if waited >= OUTAGE_WAIT:
                kept = (f"; the cleared jobs not yet recorded are kept in {held!r} for"
                        f" {CLEARED_KEEP // 60} minutes" if held else "")
                raise RedisUnavailable(
                    f"the job was removed, but Redis stopped answering before its end was"
                    f" recorded (its batch, its stored status, its unique lock): {exc}{kept}"
                ) from exc
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 2.0)


def set_aside(key: str | bytes, what: str, also: Callable[[Any], None] | None = None) -> str | None:
    """Rename ``key`` (a queue or a set being cleared) aside in one step with ``also``'s
    commands, so that a job pushed meanwhile starts it afresh rather than be cleared
    unrecorded. Returns the key it now has, or None when there was nothing to clear."""
    held = keys.cleared(what, secrets.token_hex(6))
    pipe = connection.client().pipeline(transaction=True)
    script = connection.script("set_aside")
    connection.prepare(script, pipe)
    script(keys=[key, held], args=[CLEARED_KEEP], client=pipe)
    if also is not None:
        also(pipe)
    answers = outages_raised(pipe.execute(raise_on_error=False))
    for answer in answers:
        if isinstance(answer, Exception):
            raise answer
    return held if answers[0] == 1 else None


def never_run(raws: list[bytes], held: str | None = None) -> None:
    """``never_runs`` for each cleared payload that leaves something to record: one pipeline
    for all of them, retried through an outage (``held`` is where the rest are kept)."""
    items = []
    for raw in raws:
        if any(marker in raw for marker in MARKERS):
            try:
                items.append(decode(raw))
            except PayloadError:
                continue
    ended(items, "cancelled", held)
