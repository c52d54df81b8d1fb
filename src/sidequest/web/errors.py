"""What the dashboard answers when something fails under a page: a page that says Redis is
unreachable (and recovers by itself), or a bare 500 that still carries the security headers."""

from __future__ import annotations

import logging
import string
import time

import redis
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from sidequest import connection
from sidequest.errors import RedisUnavailable
from sidequest.web import render

log = logging.getLogger("sidequest.web")
#: Redis failures that mean "cannot reach it", not "it refused this command".
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, RedisUnavailable)
#: Seconds between two log lines about the same outage: one line, not one per request.
LOG_EVERY = 30.0
#: Headers for a response the guard never saw (an error raised past it).
BARE_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cache-control": "private, no-store",
    "referrer-policy": "same-origin",
}
_last_logged = [0.0]
#: What ends an exception's text and would double the period the page puts after it.
TRAILING_STOPS = string.whitespace + "."


async def redis_unreachable(request: Request, exc: Exception) -> Response:
    """503 with a page that says where the dashboard looked (no password) and retries."""
    where = connection.redacted()
    now = time.monotonic()
    if now - _last_logged[0] > LOG_EVERY:
        _last_logged[0] = now
        log.warning("Redis at %s is unreachable: %s (pages answer 503 until it is back)",
                    where, exc)
    response = render.page(request, "unavailable.html", "Redis unreachable", status_code=503,
                           where=where, reason=reason_of(exc))
    response.headers["retry-after"] = "5"
    return response


def reason_of(exc: Exception) -> str:
    """The exception's text for the page's sentence, which ends it with its own period:
    without the period (and spaces) that redis-py's messages already end with, else the
    page would read "Connection refused..". The exception's class when no text is left."""
    return str(exc).rstrip(TRAILING_STOPS) or type(exc).__name__


async def server_error(request: Request, exc: Exception) -> Response:
    """A 500 for an error no view expected; it is raised past the guard, so the security
    headers are set here. The traceback goes to the log (Starlette re-raises it)."""
    return PlainTextResponse("Internal server error", status_code=500, headers=BARE_HEADERS)
