"""Unique jobs: while a job is queued, scheduled or running, an identical push is dropped.

A job class (or ``@job``, or ``.set``) with ``unique_for = seconds`` is pushed with three
top-level payload keys: ``unique_for``, ``unique_until`` ("start" or "success") and
``unique_digest``, the identity of the job (class, queue and arguments, not the run time, or
what the class's ``unique_key(*args, **kwargs)`` returns). The push takes the lock
``sq:unique:<digest>`` (value: the jid) and writes the job in one Lua step
(lua/unique_push.lua), so a duplicate writes nothing and a lock never exists without its job.

The worker releases the lock when the job starts (``unique_until = "start"``) or succeeds
(the default: in the same transaction as the job's acknowledgement, so that no crash between
the two lets an identical job in while the reaper runs this one again), and when it dies; the
dashboard releases it when it deletes the job. The lock's
TTL, ``unique_for`` (plus the wait of a scheduled job), is a safety net: a job whose process
was killed keeps its lock while the reaper puts it back, and only a lock older than that
lets an identical job in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from sidequest import connection, keys
from sidequest.payload import KWARGS, Payload, loads, timestamp

log = logging.getLogger("sidequest")

FOR, UNTIL, DIGEST = "unique_for", "unique_until", "unique_digest"
#: Set, in memory only, on the payload of a job that succeeded holding its lock "until
#: success": the worker then releases the lock with the job's acknowledgement.
_WITH_ACK = "\x00unique_release_with_ack"


def digest(parts: Any) -> str:
    """A stable hash of JSON-native ``parts``: the same on every host and Python version."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def stamp(item: Payload, key: Any = None) -> None:
    """Add the identity of a unique job to its normalized payload (in place). ``key``: what
    the class's ``unique_key`` hook returned, standing in for the arguments. Not the run
    time: as in Sidekiq Enterprise, a job scheduled for later holds its identity until it
    has run (or for its wait plus ``unique_for``), so pushing it again, now or for another
    time, makes nothing (a debounce: ``perform_in(60, id)`` at every change runs once)."""
    if not item.get(FOR) or DIGEST in item:
        return
    what = [item["args"], item.get(KWARGS) or {}] if key is None else ["key", key]
    # The None stood for the run time: kept, so that a lock taken before is still found.
    item[DIGEST] = digest([item["class"], item["queue"], what, None])
    item.setdefault(UNTIL, "success")


def lock_ttl_ms(item: Payload, now: float) -> int:
    wait = max(float(item["at"]) - now, 0.0) if item.get("at") is not None else 0.0
    return max(1, math.ceil((float(item[FOR]) + wait) * 1000))


def release(item: Payload, client: redis.Redis | None = None) -> None:
    """Drop the job's lock if it still holds it; a job without one is left alone."""
    if not isinstance(item.get(DIGEST), str) or not isinstance(item.get("jid"), str):
        return
    try:
        release_in(client or connection.client(), item)
    except redis.RedisError as exc:  # the lock's TTL frees it anyway
        log.warning("could not release the unique lock of %s (%s); it expires on its own",
                    item.get("jid"), exc)


def release_raw(raw: bytes | str, client: redis.Redis | None = None) -> None:
    """``release`` for a stored payload that was just deleted (the dashboard, the API); one
    that cannot be read, or holds no lock, is left alone."""
    marker = DIGEST.encode() if isinstance(raw, bytes) else DIGEST
    if marker not in raw:  # type: ignore[operator]  # both bytes or both str
        return
    try:
        item = loads(raw)
    except ValueError:
        return
    if isinstance(item, dict):
        release(item, client)


def release_in(pipe: Any, item: Payload) -> None:
    """Release the job's lock through ``pipe``: a client, or a transaction of the caller's
    (queued there, to run with its other commands)."""
    script = connection.script("release_lock")
    connection.prepare(script, pipe)
    script(keys=[keys.unique_lock(str(item[DIGEST]))], args=[str(item.get("jid"))],
           client=pipe)


def releases_with_ack(item: Payload) -> bool:
    """Whether the job's lock goes with its acknowledgement (it succeeded holding it); the
    mark is taken off, so it is acted on once."""
    return bool(item.pop(_WITH_ACK, False))


def server_middleware(job: Any, payload: Payload, queue: str,
                      call_next: Callable[[], Any]) -> Any:
    """Releases the lock at start, or marks it to go with the acknowledgement of a run that
    succeeded (a failure keeps it: the job will retry; its death releases it through
    ``on_death``; a full limiter reschedules the job with its lock)."""
    if DIGEST not in payload:
        return call_next()
    if payload.get(UNTIL) == "start":
        release(payload)
        return call_next()
    result = call_next()
    if may_have_lapsed(payload):
        note_lapse(payload)
    mark_success(payload)
    return result


def may_have_lapsed(payload: Payload) -> bool:
    """Whether the lock's TTL, counted from the push (or the scheduled time), is over now,
    from the payload alone: no Redis call for the jobs that end in time."""
    held = payload.get(FOR)
    # Sidekiq 8 writes created_at in milliseconds: read as seconds, every lock looked fresh.
    since = timestamp(payload.get("at") or payload.get("created_at"))
    if since is None or isinstance(held, bool) or not isinstance(held, (int, float)):
        return False
    return time.time() > since + float(held)


def note_lapse(payload: Payload) -> None:
    """Warn, once per class in this process, that a job ended after its lock lapsed (an
    identical push was accepted meanwhile, and may run beside it): ``unique_for`` is too
    short for how long the job waits and runs. Not when the lock is its own (taken again by
    a move from the dead set, say)."""
    name, jid = str(payload.get("class")), payload.get("jid")
    if name in _lapse_told or not isinstance(payload.get(DIGEST), str):
        return
    try:
        holder = connection.client().get(keys.unique_lock(str(payload[DIGEST])))
    except Exception:
        # A diagnostic: the job has ended, and whatever the read raises (on a Cluster a
        # moving slot raises outside RedisError) must not fail it.
        return
    if (holder.decode("utf-8", "replace") if isinstance(holder, bytes) else holder) == jid:
        return
    with _lapse_lock:  # two threads may end such jobs at once
        if name in _lapse_told:
            return
        _lapse_told.add(name)
    log.warning("%s %s ended after its unique lock lapsed (unique_for=%s s from its push):"
                " an identical job could be pushed meanwhile and run beside it. Make"
                " unique_for cover how long the job can wait, run and retry (told once per"
                " class)", name, jid, payload.get(FOR))


#: Classes told of a lapsed lock (note_lapse).
_lapse_told: set[str] = set()
_lapse_lock = threading.Lock()


def mark_success(payload: Payload) -> None:
    """The job is done with its lock: release it with the acknowledgement."""
    if isinstance(payload.get(DIGEST), str) and isinstance(payload.get("jid"), str):
        payload[_WITH_ACK] = True


def on_death(payload: Payload, exc: BaseException) -> None:
    """A job that will not run again gives its identity back."""
    release(payload)
