"""The rate limiters in use (those acquired in the last hour), for the dashboard's Limiters
tab: name, kind, limit, how much of it is taken now, and reschedules in the last hour."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from sidequest import connection, keys
from sidequest.api.lenient import as_int, outages_raised

#: Most limiters listed, the most recently used first (per-user names can be many).
MAX_LISTED = 200


@dataclass(frozen=True)
class LimiterInfo:
    name: str
    kind: str  # "concurrent", "bucket" or "window"
    limit: int
    interval: float  # seconds: the lock timeout of a concurrent limiter
    in_use: int  # slots held, or calls counted in the current interval or window
    over_last_hour: int  # jobs rescheduled because it was full
    last_used: float  # epoch seconds


def _parse(member: bytes) -> tuple[str, int, float, str] | None:
    kind, _, rest = member.decode("utf-8", "replace").partition("|")
    limit, _, rest = rest.partition("|")
    interval, _, name = rest.partition("|")
    try:
        return kind, int(limit), float(interval), name
    except ValueError:
        return None


#: The ten-minute counts of reschedules that make the last hour: the current one and five.
HOUR_SPANS = 6


def limiters(now: float | None = None) -> list[LimiterInfo]:
    client = connection.client_for("default")  # every limiter lives there (limiter.py)
    now_ms = int((now if now is not None else time.time()) * 1000)
    rows = cast(list[tuple[bytes, float]],
                client.zrevrange(keys.LIMITERS, 0, MAX_LISTED - 1, withscores=True))
    parsed = [(p, score) for member, score in rows if (p := _parse(member)) is not None]
    pipe: Any = client.pipeline(transaction=False)
    for (kind, _, interval, name), _ in parsed:
        key = keys.limiter(name)
        if kind == "bucket":
            pipe.hmget(key, ["w", "c"])
        elif kind == "window":
            pipe.zcount(key, now_ms - int(interval * 1000), "+inf")
        else:
            pipe.zcount(key, now_ms, "+inf")
        # The last hour: the current ten minutes and the five before (50 to 60 minutes).
        span = keys.over_span(now_ms / 1000)
        for back in range(HOUR_SPANS):  # GETs: a cluster's pipeline refuses MGET
            pipe.get(keys.limiter_over(name, span - back))
    replies = outages_raised(pipe.execute(raise_on_error=False))
    found = []
    for i, ((kind, limit, interval, name), used_ms) in enumerate(parsed):
        row = replies[i * (1 + HOUR_SPANS): (i + 1) * (1 + HOUR_SPANS)]
        used, over = row[0], sum(as_int(count) for count in row[1:])
        if kind == "bucket":  # counted only while its interval is the current one
            window, count = used if isinstance(used, list) else (None, None)
            current = as_int(window, -1) == now_ms // max(1, int(interval * 1000))
            used = as_int(count) if current else 0
        found.append(LimiterInfo(name, kind, limit, interval, as_int(used), as_int(over),
                                 used_ms / 1000))
    return found
