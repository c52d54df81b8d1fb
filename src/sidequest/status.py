"""Job status, progress and results, opt-in per job class (``store_result = True``).

Such a job carries ``store_result`` (and ``result_ttl``, seconds, 24 hours by default) in its
payload, and its status lives in the hash ``sq:status:<jid>`` for ``result_ttl`` after its
last change: ``state`` (queued, scheduled, running, retrying, then one of the ends:
succeeded, dead, cancelled or expired, the last two for a job dropped unrun), ``progress``
(0 to 1) and ``message`` from ``self.set_progress``, and ``result``, the JSON of what
``perform`` returned. ``sidequest.api.JobStatus(jid)`` reads it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sidequest import connection, keys, retry
from sidequest.payload import Payload, dumps

log = logging.getLogger("sidequest")

STORE, TTL = "store_result", "result_ttl"
DEFAULT_TTL = 86400
STATES = ("queued", "scheduled", "running", "retrying", "succeeded", "dead", "cancelled",
          "expired")


def wanted(payload: Payload) -> bool:
    return payload.get(STORE) is True


#: The longest a status is kept, seconds (ten years): an odd result_ttl or run time in a
#: payload must make no TTL that Redis refuses.
MAX_TTL = 10 * 365 * 86400


def ttl_of(payload: Payload) -> int:
    """``result_ttl``, counted from when a scheduled job is due: one deferred for longer had
    no status from then until it ran. Odd values (not numbers, huge ones) read as unset."""
    ttl = DEFAULT_TTL
    value = _finite(payload.get(TTL))
    if value is not None and value > 0:
        ttl = max(1, int(min(value, MAX_TTL)))
    at = _finite(payload.get("at"))
    if at is not None:
        ttl += max(0, math.ceil(min(at - time.time(), MAX_TTL)))
    return min(ttl, MAX_TTL)


def _finite(value: Any) -> float | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)  # an integer too large for a float: none
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def fields(state: str, **extra: Any) -> dict[str, Any]:
    return {"state": state, "updated_at": repr(time.time()), **extra}


def write(pipe: Any, payload: Payload, state: str, **extra: Any) -> None:
    """Queue the status change on ``pipe`` (a pipeline or a client)."""
    key = keys.status(str(payload.get("jid", "")))
    pipe.hset(key, mapping=fields(state, **extra))
    pipe.expire(key, ttl_of(payload))


#: Characters of an error message kept in a status (the retry set keeps the whole one).
ERROR_MESSAGE_MAX = 2000


def failure(exc: BaseException) -> dict[str, str]:
    """The error of a failed run, as the retry set records it, for the status of a job
    retrying or dead (``JobStatus.error_class`` and ``error_message``)."""
    return {"error_class": retry.error_class(exc),
            "error_message": retry.error_message(exc)[:ERROR_MESSAGE_MAX]}


def keep_until_retry(pipe: Any, payload: Payload, at: float) -> None:
    """Queue on ``pipe``: the status of a job that will retry at ``at`` lives ``result_ttl``
    past then, not from its failure: a retry days away must not find it expired."""
    pipe.expire(keys.status(str(payload.get("jid", ""))), ttl_of({**payload, "at": at}))


def save(payload: Payload, state: str, **extra: Any) -> None:
    """Write a status change now; a Redis error is logged, never the job's problem."""
    try:
        pipe = connection.client().pipeline(transaction=True)
        write(pipe, payload, state, **extra)
        pipe.execute()
    except Exception as exc:
        log.warning("could not record the status of job %s: %s", payload.get("jid"), exc)


def result_text(result: Any, payload: Payload) -> str:
    """The JSON of ``perform``'s return value, or a note that it has none (logged: the
    note could pass for a result otherwise)."""
    try:
        return dumps(result)
    except (TypeError, ValueError) as exc:
        log.warning("%s %s returned a value that is not JSON (%s); its stored result is"
                    " {\"unserializable\": <its repr>}: return str, int, float, bool, None,"
                    " lists and dicts of them (e.g. a datetime's isoformat())",
                    payload.get("class"), payload.get("jid"), exc)
        return json.dumps({"unserializable": repr(result)[:200]})


def on_death(payload: Payload, exc: BaseException) -> None:
    """Death handler: a job that stores its result and will not run again is dead."""
    if wanted(payload):
        save(payload, "dead", **failure(exc))


def check_progress(fraction: Any) -> None:
    number = isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
    if not number or not 0 <= fraction <= 1:
        # A percentage, most likely, from 2 up: 1.5 reads as a slip past 1 more than 1.5%.
        hint = f" ({fraction}% is {fraction / 100:g})" if number and 2 <= fraction <= 100 else ""
        raise ValueError(f"progress is a fraction from 0 to 1, e.g. 0.5 for half way;"
                         f" got {fraction!r}{hint}")


#: Job classes told once that their progress is not kept.
_told: set[str] = set()


class _Later:
    """Progress reported from a running event loop (an ``async def perform``): written by a
    thread of its own, in order, as a blocking Redis call there would hold every async job
    of the process while Redis is slow (up to the socket timeout)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._last: Future[None] | None = None

    def submit(self, call: Callable[[], None]) -> None:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="sidequest-progress")
            self._last = self._executor.submit(call)

    def wait(self) -> None:
        """Until every write submitted so far is done (one thread: the last one is)."""
        last = self._last
        if last is not None:
            last.result()

    def pending(self) -> bool:
        last = self._last
        return last is not None and not last.done()

    def forget(self) -> None:  # in a forked child: the parent's thread is not there
        self._executor = self._last = None


later = _Later()
os.register_at_fork(after_in_child=later.forget)


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def set_progress(payload: Payload, fraction: float, message: str | None) -> None:
    if not wanted(payload):
        # A status without store_result would outlive the job as "running" for a day.
        name = str(payload.get("class"))
        if name not in _told:
            _told.add(name)
            log.warning("%s.set_progress: nothing is kept, as the class does not set"
                        " store_result = True (set it to read progress with JobStatus)", name)
        return
    extra: dict[str, Any] = {"progress": repr(float(fraction))}
    if message is not None:
        extra["message"] = str(message)[:1000]
    if on_event_loop():
        # Before the job's end is recorded, the end waits for these (see worker/guards.py):
        # written after it, "running" would replace "succeeded".
        later.submit(lambda: save(payload, "running", **extra))
    else:
        save(payload, "running", **extra)
