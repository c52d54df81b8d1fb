"""Unique jobs: while one job with a given identity is queued, scheduled or running, an
identical push is dropped (``perform_async`` returns None) and writes nothing.

The identity is the job's class, queue and arguments (or what the class's ``unique_key(*args)``
returns) and, for a scheduled job, its run time to the second. Its SHA-256 names the lock
``sq:unique:<digest>``, a string holding the jid of the job that owns it, with a TTL of
``unique_for`` seconds (plus the wait of a scheduled job) as the safety net. The lock is taken
and the job pushed in one Lua step, so no crash leaves a lock without its job.

The lock is released, only by the job that holds it, when the job starts (``unique_until =
"start"``) or succeeds (``"success"``, the default), and when it dies, is discarded or is
deleted through the API or the dashboard. A job that fails keeps its lock while it waits
to retry; one whose process was killed keeps it while a reaper requeues it.

The payload carries ``sq_unique``: ``{"key": <digest>, "for": <seconds>, "until": ...}``, a
key Ruby Sidekiq ignores, so a Ruby worker runs the job (without releasing the lock, which
then lasts its TTL).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable
from typing import Any

from sidequest import connection, keys
from sidequest.payload import Payload, loads

#: The payload key; deliberately not Sidekiq Enterprise's ``unique_for``/``unique_until``,
#: so that an Enterprise process sharing the Redis never acts on our jobs' locks.
PAYLOAD_KEY = "sq_unique"
UNTIL = ("start", "success")
OPTIONS = ("unique_for", "unique_until")

UniqueKey = Callable[..., Any]


@functools.cache
def _script(name: str) -> Any:
    """A script object made once (it hashes its source), shared by every call."""
    return connection.script(name)


def check_option(key: str, value: Any) -> tuple[bool, str]:
    """Whether ``value`` is valid for ``unique_for``/``unique_until``, and what is expected."""
    if key == "unique_until":
        return value in UNTIL, '"start" or "success"'
    return _positive(value), "a positive number of seconds, or None"


def _positive(value: Any) -> bool:
    if value is None:
        return True
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def stamp(item: Payload, unique_key: UniqueKey | None = None) -> Payload:
    """Turn the ``unique_for``/``unique_until`` options of a push into ``sq_unique``."""
    seconds = item.pop("unique_for", None)
    until = item.pop("unique_until", None) or "success"
    if seconds is None:
        return item
    item[PAYLOAD_KEY] = {"key": digest(item, unique_key), "for": seconds, "until": until}
    return item


def digest(item: Payload, unique_key: UniqueKey | None = None) -> str:
    """SHA-256 of the canonical JSON of the job's identity."""
    args = item.get("args", [])
    if unique_key is not None:
        what: Any = ["key", unique_key(*args)]
    else:
        what = ["args", args, item.get("kwargs") or {}]
    at = item.get("at")
    run_at = int(at) if isinstance(at, (int, float)) else None
    identity = [item.get("class"), item.get("queue", "default"), what, run_at]
    try:
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{item.get('class')}.unique_key must return JSON values (str, int, "
                        f"float, bool, None, list, dict with str keys): {exc}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lock_of(job: Payload) -> tuple[str, str, dict[str, Any]] | None:
    """(lock key, jid, the ``sq_unique`` entry) of a unique job, else None."""
    entry = job.get(PAYLOAD_KEY)
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        return None
    return keys.unique_lock(entry["key"]), str(job.get("jid", "")), entry


def ttl_ms(entry: dict[str, Any], score: float | None, now: float) -> int:
    """The lock lives ``unique_for`` seconds past the job's run time."""
    wait = max(0.0, score - now) if score is not None else 0.0
    return max(1, int((wait + float(entry["for"])) * 1000))


def queue_pushes(pipe: Any, jobs: list[tuple[Payload, bytes, float | None]],
                 now: float) -> None:
    """Queue on ``pipe`` one atomic lock-and-push per unique job; each result is 1 when the
    job was written, 0 for a duplicate (nothing written)."""
    if not jobs:  # the common case: no unique job in this push
        return
    script = _script("unique_push")
    for job, body, score in jobs:
        lock, jid, entry = lock_of(job)  # type: ignore[misc]
        target = keys.SCHEDULE if score is not None else keys.queue(job["queue"])
        script(keys=[lock, target, keys.QUEUES],
               args=[jid, ttl_ms(entry, score, now), body,
                     "" if score is None else repr(score), job["queue"]], client=pipe)


def release(job: Payload, pipe: Any = None) -> None:
    """Drop the job's lock if it holds it; on ``pipe`` when given (inside its transaction),
    else now."""
    found = lock_of(job)
    if found is None:
        return
    lock, jid, _ = found
    _script("unique_release")(keys=[lock], args=[jid],
                              client=pipe if pipe is not None else connection.client())


def release_raw(raw: bytes | str, pipe: Any = None) -> None:
    """Release the lock of a stored payload that was deleted or buried (API, dashboard,
    reaper); on ``pipe`` when given."""
    try:
        job = loads(raw)
    except (ValueError, RecursionError):
        return
    if isinstance(job, dict) and PAYLOAD_KEY in job:
        release(job, pipe)


def server_middleware(instance: Any, payload: Payload, queue: str,
                      call_next: Callable[[], Any]) -> Any:
    """Release the lock when the job starts or, by default, when it returns."""
    if PAYLOAD_KEY not in payload:
        return call_next()
    entry = payload[PAYLOAD_KEY]
    if isinstance(entry, dict) and entry.get("until") == "start":
        release(payload)
        return call_next()
    result = call_next()
    release(payload)
    return result
