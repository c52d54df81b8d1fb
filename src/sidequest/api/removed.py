"""What a job taken out of Redis by hand (the dashboard, the API) leaves behind.

A worker's guards record a job's end: its unique identity goes back, its stored status says
how it ended, its batch counts it. A job deleted from a queue or a set, or killed before it
ran, never reaches a worker, so the hand that removed it records that end instead; without
it a batch would wait for the job for good, and a status would say "queued" or "retrying"
for a job that will never run.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any

import redis

from sidequest import batch, connection, keys, status, unique
from sidequest.errors import PayloadError
from sidequest.payload import Payload, decode

#: Seconds a cleared queue's or set's jobs are kept while their removal is recorded: gone by
#: then even if the process clearing it died on the way.
CLEARED_KEEP = 3600
#: Only a payload holding one of these leaves something to record when it is removed (a
#: batch, a stored status, a unique lock): the others are not parsed.
MARKERS = (b'"sq_batch"', b'"store_result"', unique.DIGEST.encode())


def never_runs(raw: bytes, item: Payload) -> None:
    """``raw`` was deleted from a queue, the schedule or the retry set: cancelled, to its
    status; done to its batch, a failure if it failed before (as a retry deleted)."""
    unique.release_raw(raw)
    if status.wanted(item):
        status.save(item, "cancelled")
    batch.dropped(item)


def killed(raw: bytes, item: Payload) -> None:
    """``raw`` was moved to the dead set by hand: dead, to its status; a failure, to its
    batch (recorded again for a retry, which changes nothing)."""
    unique.release_raw(raw)
    if status.wanted(item):
        status.save(item, "dead")
    batch.dropped(item, failed=True)


def set_aside(key: str, what: str, also: Callable[[Any], None] | None = None) -> str | None:
    """Rename ``key`` (a queue or a set being cleared) aside in one step with ``also``'s
    commands, so that a job pushed meanwhile starts it afresh rather than be cleared
    unrecorded. Returns the key it now has, or None when there was nothing to clear."""
    held = keys.cleared(what, secrets.token_hex(6))
    pipe = connection.client().pipeline(transaction=True)
    pipe.rename(key, held)
    pipe.expire(held, CLEARED_KEEP)
    if also is not None:
        also(pipe)
    answers = pipe.execute(raise_on_error=False)
    if isinstance(answers[0], redis.ResponseError):  # no such key: nothing there
        for answer in answers[1:]:
            if isinstance(answer, Exception):
                raise answer
        return None
    return held


def never_run(raws: Iterable[bytes]) -> None:
    """``never_runs`` for each cleared payload that leaves something to record."""
    for raw in raws:
        if any(marker in raw for marker in MARKERS):
            try:
                item = decode(raw)
            except PayloadError:
                item = {}
            never_runs(raw, item)
