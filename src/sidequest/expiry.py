"""Expiring jobs: a job with ``expires_in = seconds`` that has not started that long after it
was pushed (or after its scheduled run time) is dropped when a worker fetches it: counted in
``sq:stat:expired``, logged once, never run and never retried. A retry that comes due after
the deadline is dropped the same way.

The payload carries ``sq_expires_at`` (epoch seconds), a key Ruby Sidekiq ignores: a Ruby
worker runs the job whatever its age.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from sidequest import connection, keys
from sidequest.payload import Payload, now

#: Not Sidekiq Pro's own option name in the payload, so its middleware never reads ours.
PAYLOAD_KEY = "sq_expires_at"

log = logging.getLogger("sidequest")


def check_option(value: Any) -> tuple[bool, str]:
    ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                           and math.isfinite(value) and value > 0)
    return ok, "a positive number of seconds, or None"


def stamp(item: Payload) -> Payload:
    """Turn the ``expires_in`` option of a push into the absolute ``sq_expires_at``."""
    seconds = item.pop("expires_in", None)
    if seconds is not None:
        at = item.get("at")
        start = float(at) if isinstance(at, (int, float)) else now()
        item[PAYLOAD_KEY] = start + float(seconds)
    return item


def expired(payload: Payload, when: float) -> bool:
    deadline = payload.get(PAYLOAD_KEY)
    return (isinstance(deadline, (int, float)) and not isinstance(deadline, bool)
            and deadline < when)


def server_middleware(instance: Any, payload: Payload, queue: str,
                      call_next: Callable[[], Any]) -> Any:
    """Skip ``perform`` for a job past its deadline; the job is then acknowledged as done."""
    if PAYLOAD_KEY not in payload or not expired(payload, now()):
        return call_next()
    connection.client().incr(keys.STAT_EXPIRED)
    late = now() - float(payload[PAYLOAD_KEY])
    log.warning("expired: %s jid=%s queue=%s was not started in time (%.1f s past its "
                "expires_in deadline); dropped", payload.get("class"), payload.get("jid"),
                queue, late)
    return None


def expired_count() -> int:
    """How many jobs were dropped as expired, all time."""
    value = connection.client().get(keys.STAT_EXPIRED)
    return int(value) if value else 0
