"""What the dashboard answers when something fails under a page: a page that says Redis is
unreachable (and recovers by itself), or a bare 500 that still carries the security headers."""

from __future__ import annotations

import logging
import string
import time

import redis
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from sidequest import connection, url_problems
from sidequest.api.stats import ShardUnreachable
from sidequest.errors import ConfigError, RedisUnavailable
from sidequest.url_clients import CLUSTER_UNAVAILABLE
from sidequest.web import render
from sidequest.web.formpage import SAFE_METHODS, form_page
from sidequest.web.render import route_path
from sidequest.web.settings import HSTS, Settings

log = logging.getLogger("sidequest.web")
#: Redis failures that mean "cannot reach it", not "it refused this command".
UNREACHABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, RedisUnavailable, *CLUSTER_UNAVAILABLE)
#: What may mean the Redis URL itself is wrong (a cluster node behind redis://, a plain Redis
#: behind redis+cluster://, a missing database): checked by ``misconfigured``.
MISCONFIGURED: tuple[type[Exception], ...] = (
    ConfigError, redis.ResponseError, redis.exceptions.RedisClusterException)
#: Seconds between two log lines about the same outage: one line, not one per request.
LOG_EVERY = 30.0
#: Headers for a response the guard never saw (an error raised past it): those the guard
#: sets on every response (security._security_headers), with a fixed policy for the page.
BARE_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cache-control": "private, no-store",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}
_last_logged = [0.0]
#: Each problem's last log line (monotonic): one line per problem every LOG_EVERY seconds.
_last_misconfigured: dict[str, float] = {}
#: What ends an exception's text and would double the period the page puts after it.
TRAILING_STOPS = string.whitespace + "."


#: The ``app.state`` attribute naming the settings a host reads Sidequest's from (the Django
#: integration sets "settings.SIDEQUEST", the Flask one "app.config"): where the unreachable
#: page says to set the Redis URL, since such a setting wins over the environment variables
#: the page names otherwise.
SETTINGS_SOURCE = "sidequest_settings_source"
#: Beside it, the keys the host's settings give the Redis URL and the shard table, when they
#: are not SIDEQUEST's own ("redis_url", "shards"): Flask's app.config has SIDEQUEST_REDIS_URL.
SETTINGS_KEYS = "sidequest_settings_keys"
DEFAULT_KEYS = {"redis_url": "redis_url", "shards": "shards"}
#: For ``sidequest web``: the settings file it read (its redis_url and [shards] win over the
#: environment variables), or "--redis-url" when the URL was given on its command line.
SETTINGS_FILE = "sidequest_settings_file"

#: The answer to a visitor not logged in (the login form, logout) when Redis fails: nothing
#: about the deployment (its Redis, its tabs) before the password; the log has the details.
REDIS_DOWN = "Redis is not answering; try again in a moment."
#: Seconds the outage page waits before trying again: a page asked for with a GET reloads
#: itself; after a form (a POST, whose action was not done) it goes to the form's page with
#: a GET, later, so that the reader has time to see that nothing was done, and never sends
#: the form again by itself.
RETRY_SECONDS = 5
NOT_DONE_SECONDS = 10
#: Set in the scope by the guard when Redis failed before any view ran: a form's action was
#: then not begun. From a view, it failed at its first Redis call, unless Redis went away in
#: the middle of a bulk action, which may have done part of it by then.
BEFORE_VIEW = "sidequest.before_view"
MISCONFIGURED_PUBLIC = "The dashboard cannot use its Redis; its server's log says why."


def _public(request: Request) -> bool:
    return bool(request.scope.get("sidequest.public"))


async def redis_unreachable(request: Request, exc: Exception) -> Response:
    """503 with a page that says which shard's Redis the dashboard could not reach and where
    it looked (no password), and retries; a bare sentence before the login."""
    shard, where = unreachable_shard(exc)
    wrong = exc.__cause__ if isinstance(exc, ShardUnreachable) else exc
    if isinstance(wrong, redis.AuthenticationError):
        # redis-py makes a refused password a ConnectionError, but no wait will mend it: the
        # page that says what to fix in the URL.
        return await misconfigured(request, url_problems.wrong_credentials(wrong, where) or wrong)
    now = time.monotonic()
    if now - _last_logged[0] > LOG_EVERY:
        _last_logged[0] = now
        log.warning("Redis %sat %s is unreachable: %s (pages that need it answer 503 until it "
                    "is back)", f"of shard {shard} " if shard else "", where, reason_of(exc))
    if _public(request):
        return PlainTextResponse(REDIS_DOWN, status_code=503, headers={"retry-after": "5"})
    state = request.app.state
    # A form's action was not done: the page says so and goes back to the form's page with a
    # GET (its own URL may be an action's, and a refresh must never send the form again).
    back = (form_page(request, route_path(request.scope))
            if request.method not in SAFE_METHODS else None)
    response = render.page(request, "unavailable.html", "Redis unreachable", status_code=503,
                           where=where, down_shard=shard, reason=reason_of(exc), back=back,
                           untouched=bool(request.scope.get(BEFORE_VIEW)),
                           refresh=NOT_DONE_SECONDS if back else RETRY_SECONDS,
                           settings_source=getattr(state, SETTINGS_SOURCE, None),
                           settings_file=getattr(state, SETTINGS_FILE, None),
                           settings_keys={**DEFAULT_KEYS, **getattr(state, SETTINGS_KEYS, {})})
    response.headers["retry-after"] = str(RETRY_SECONDS)
    return response


def unreachable_shard(exc: Exception) -> tuple[str | None, str]:
    """The shard that could not be reached (None with one Redis) and its redacted URL. A
    ShardUnreachable names it, since a page may read shards other than its own; a bare
    redis-py error comes from the page's own shard."""
    if isinstance(exc, ShardUnreachable):
        shard, where = exc.shard, exc.where
    else:
        shard, where = connection.current_shard(), connection.redacted()
    return (shard if len(connection.shard_names()) > 1 else None), where


def reason_of(exc: Exception) -> str:
    """The exception's text for the page's sentence, which ends it with its own period:
    without the period (and spaces) that redis-py's messages already end with, else the
    page would read "Connection refused..". The exception's class when no text is left."""
    if isinstance(exc, ShardUnreachable):
        return exc.reason  # the redis-py error's text, not the advice meant for code
    return url_problems.readable(exc).rstrip(TRAILING_STOPS) or type(exc).__name__


async def misconfigured(request: Request, exc: Exception) -> Response:
    """A 500 page that says what is wrong with the Redis URL and what to write instead, for
    an error that no wait would mend; any other such error is an ordinary 500."""
    problem = exc if isinstance(exc, ConfigError) else connection.url_problem(
        exc, connection.redacted())
    if problem is None:
        log.error("error under %s", request.url.path, exc_info=exc)  # handled: not re-raised
        return await server_error(request, exc)
    now, said = time.monotonic(), str(problem)
    if now - _last_misconfigured.get(said, -LOG_EVERY) >= LOG_EVERY:  # not once per request
        if len(_last_misconfigured) > 100:
            _last_misconfigured.clear()
        _last_misconfigured[said] = now
        log.error("the dashboard cannot use Redis: %s", problem)
    if _public(request):
        return PlainTextResponse(MISCONFIGURED_PUBLIC, status_code=500)
    return render.page(request, "misconfigured.html", "Configuration error", status_code=500,
                       problem=str(problem), bare=True)


async def not_found(request: Request, exc: Exception) -> Response:
    """An address the dashboard does not have: a page with the tabs, to go on from there. A
    missing static file (no page around it) and a request the guard has not seen (no
    nonce for the page's scripts) keep the plain answer."""
    if "/static/" in request.url.path or "sidequest.nonce" not in request.scope:
        return PlainTextResponse("Not Found", status_code=404)
    return render.page(request, "notfound.html", "Not found", status_code=404,
                       path=route_path(request.scope))


async def server_error(request: Request, exc: Exception) -> Response:
    """A 500 for an error no view expected; it is raised past the guard, so the security
    headers are set here (HSTS too, as the guard would under ``https=True``). The traceback
    goes to the log (Starlette re-raises it)."""
    headers = dict(BARE_HEADERS)
    settings = getattr(getattr(request.scope.get("app"), "state", None), "sidequest", None)
    if isinstance(settings, Settings) and settings.https:
        headers["strict-transport-security"] = HSTS
    return PlainTextResponse("Internal server error", status_code=500, headers=headers)
