"""``create_app``: the dashboard as an ASGI application (Starlette), to serve with
``sidequest web``, mount in FastAPI/Starlette, or bridge to WSGI with ``wsgi_app``."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable
from typing import Any

import redis
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from sidequest import connection, environ
from sidequest.errors import ConfigError
from sidequest.web import errors
from sidequest.web.auth import AuthCallable, AuthPolicy, digest
from sidequest.web.limiter import LoginLimiter
from sidequest.web.revocation import LiveSessions
from sidequest.web.security import MIN_SCRAPE_TOKEN, SCRAPE_TOKEN_ENV, Guard
from sidequest.web.session import Signer
from sidequest.web.settings import Settings
from sidequest.web.shards import ShardScope
from sidequest.web.views import (
    batches,
    busy,
    dashboard,
    limiters,
    login,
    metrics,
    prometheus,
    queues,
    sets,
)
from sidequest.web.views import periodic as periodic_view
from sidequest.web_flags import WEB_PASSWORD_ENV

log = logging.getLogger("sidequest.web")
PASSWORD_ENV = WEB_PASSWORD_ENV
SECRET_ENV = environ.WEB_SECRET
SESSION_HOURS = 12
#: Shortest password and secret accepted: a shorter one falls to guessing (the login limiter
#: slows guesses down, it cannot make "abc" safe), and anyone who knows the secret can sign
#: a session cookie.
MIN_PASSWORD = 8
MIN_SECRET = 32
#: How to make a good scrape token (32 URL-safe characters), for the error that refuses one.
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
#: What each way of deciding who may use the dashboard is for, for the error that refuses two.
WAYS = {
    "auth=": "auth= to let your application's own check decide",
    "password=": "password= (or $SIDEQUEST_WEB_PASSWORD) for the dashboard's own login page",
    "insecure=True": "insecure=True for no login, only when something in front of the"
                     " dashboard already checks who may use it",
}
NO_AUTH = (
    "the dashboard needs a login: set SIDEQUEST_WEB_PASSWORD, pass password= or auth= to"
    " create_app(), or pass insecure=True if something in front of it already checks who"
    " may use it"
)


def create_app(
    *,
    password: str | None = None,
    auth: AuthCallable | None = None,
    login_url: str | None = None,
    secret_key: str | bytes | None = None,
    insecure: bool = False,
    allowed_hosts: Iterable[str] | None = None,
    title: str = "Sidequest",
    session_hours: float = SESSION_HOURS,
    login_attempts_per_minute: int = 30,
    https: bool = False,
    prometheus_token: str | None = None,
) -> Starlette:
    """The dashboard. Who may use it, exactly one of:

    - ``auth``: your application's check, ``auth(request) -> bool`` (plain or async; a
      Starlette ``Request``), e.g. "is the logged-in user staff"; ``login_url`` is where a
      browser that fails it is sent, told ``next`` (else it gets a 401); raising
      ``PermissionError`` refuses a logged-in user with a 403 instead;
      ``$SIDEQUEST_WEB_PASSWORD`` is then ignored, with a warning in the log;
    - ``password`` (else ``$SIDEQUEST_WEB_PASSWORD``): the dashboard's own login page;
    - ``insecure=True``: no login at all (only behind something that checks already); a
      ``$SIDEQUEST_WEB_PASSWORD`` set where it runs still asks for the password.

    With none of them, or more than one, it raises ConfigError, as it does for a password
    shorter than 8 characters. ``prometheus_token`` (else ``$SIDEQUEST_PROMETHEUS_TOKEN``)
    also opens ``/prometheus`` to a scraper that sends it as a bearer token; one shorter than
    16 or not printable ASCII is refused too.
    Sessions are signed with ``secret_key`` (else ``$SIDEQUEST_WEB_SECRET``, else a random
    key, so a restart logs everyone out; set one of at least 32 bytes when several processes
    serve the dashboard); logging out or changing the password revokes them.
    ``https=True`` says browsers reach the dashboard over https (a TLS proxy in front of it):
    the session cookie is then always ``Secure`` and every response carries HSTS. Without it
    the cookie is ``Secure`` only on requests that arrived over https (as the server sees
    them: directly, or through a proxy whose forwarded headers it trusts).
    At most ``login_attempts_per_minute`` logins are checked, across all addresses and
    processes (see ``limiter.py``). Redis is the one configured for Sidequest
    (``sidequest.configure`` or ``$SIDEQUEST_REDIS_URL``/``$REDIS_URL``); it also holds the
    live sessions and the login limiter's counts.
    """
    policy = auth_policy(password, auth, login_url, insecure)
    token = scrape_token(prometheus_token)
    if login_attempts_per_minute < 1:
        raise ConfigError(f"login_attempts_per_minute must be 1 or more, got"
                          f" {login_attempts_per_minute}")
    settings = Settings(
        auth=policy,
        # The password's digest is part of the signing key: changing the password makes
        # every cookie signed before worthless, even with the same secret.
        signer=Signer(signing_secret(secret_key), session_hours * 3600,
                      policy.password_digest or b""),
        # Sessions and login counts live on the default shard, whichever shard a page shows.
        live=LiveSessions(session_hours * 3600, client=_default_client),
        limiter=LoginLimiter(per_minute=login_attempts_per_minute, client=_default_client),
        title=title,
        https=https,
        allowed_hosts=frozenset(h.lower() for h in allowed_hosts) if allowed_hosts else None,
        scrape_token=token,
        random_secret=secret_key is None and not os.environ.get(SECRET_ENV),
    )
    handlers: dict[Any, Any] = {error: errors.redis_unreachable for error in errors.UNREACHABLE}
    handlers.update({error: errors.misconfigured for error in errors.MISCONFIGURED})
    handlers[404] = errors.not_found
    handlers[500] = errors.server_error
    app = Starlette(routes=routes(), middleware=[Middleware(Guard, settings=settings),
                                                 Middleware(ShardScope)],
                    exception_handlers=handlers)
    app.state.sidequest = settings
    return app


def auth_policy(password: str | None, auth: AuthCallable | None, login_url: str | None,
                insecure: bool) -> AuthPolicy:
    """The one way ``create_app`` was told to decide who may use the dashboard; ConfigError
    when it was told none, or more than one."""
    check_one_way(password, auth, insecure)
    if auth is not None:
        if os.environ.get(PASSWORD_ENV):
            # Not an error: the variable may be there for a `sidequest web` on this host.
            log.warning("%s is set but ignored here: create_app(auth=...) decides who may use"
                        " this dashboard", PASSWORD_ENV)
        return AuthPolicy(callback=auth, login_url=login_url)
    # The variable wins over insecure=True: a password set where the dashboard runs is
    # never dropped for a default written in code (sidequest web's loopback does the same).
    password = password if password is not None else os.environ.get(PASSWORD_ENV) or None
    if password is not None:
        check_password(password)
        return AuthPolicy(password_digest=digest(password), login_url=login_url)
    if not insecure:
        raise ConfigError(NO_AUTH)
    return AuthPolicy(login_url=login_url, insecure=True)


def check_one_way(password: str | None, auth: AuthCallable | None, insecure: bool) -> None:
    """Refuse two ways at once: one of them would be ignored without a word (a password
    given beside auth= used to leave a login page that answered 404)."""
    given = [name for name, used in (("auth=", auth is not None),
                                     ("password=", password is not None),
                                     ("insecure=True", insecure)) if used]
    if len(given) > 1:
        raise ConfigError(
            f"create_app() was given {' and '.join(given)}, but the dashboard uses exactly one"
            " way to decide who may use it; pass only one: "
            + "; ".join(WAYS[name] for name in given)
        )


def _default_client() -> redis.Redis:
    return connection.client_for("default")


def secret_from_host(host_secret: str | bytes | None) -> bytes | None:
    """A dashboard secret derived from the host framework's own (Django's SECRET_KEY, Flask's
    secret_key), for a dashboard mounted in it; None when ``$SIDEQUEST_WEB_SECRET`` is set
    (it wins) or the host has none. Every process of the app then signs alike, so a form
    loaded from one process posts to another (a random key per process refused it). The
    HMAC keeps the host's key itself out of the dashboard's cookies."""
    if os.environ.get(SECRET_ENV) or not host_secret:
        return None
    key = host_secret.encode() if isinstance(host_secret, str) else host_secret
    return hmac.new(key, b"sidequest dashboard sessions", hashlib.sha256).digest()


def signing_secret(secret_key: str | bytes | None) -> bytes:
    """``secret_key``, else ``$SIDEQUEST_WEB_SECRET``, else random bytes for this process."""
    secret = secret_key if secret_key is not None else os.environ.get(SECRET_ENV) or None
    if secret is None:
        return secrets.token_bytes(MIN_SECRET)
    key = secret.encode() if isinstance(secret, str) else secret
    check_secret(key)
    return key


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(
            f"the dashboard password ({PASSWORD_ENV} or password=) is {len(password)}"
            f" characters long; use at least {MIN_PASSWORD}, e.g. a few random words"
        )


def check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET:
        raise ConfigError(
            f"the dashboard secret ({SECRET_ENV} or secret_key=) is {len(secret)} bytes long;"
            f" use at least {MIN_SECRET} random bytes, e.g. the output of"
            " python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def scrape_token(given: str | None = None) -> str | None:
    """``given``, else ``$SIDEQUEST_PROMETHEUS_TOKEN``, checked; None when both are unset or
    empty."""
    token = given or os.environ.get(SCRAPE_TOKEN_ENV) or None
    if token is not None:
        check_scrape_token(token)
    return token


def check_scrape_token(token: str) -> None:
    """Refuse a token that would be ignored or never match, rather than start a dashboard
    whose scraper gets 401 for no reason it can see."""
    # The scraper sends it in a header: whitespace at either end is stripped on the way,
    # and anything but ASCII arrives as other bytes, so such a token could never match.
    bad = next((i for i, char in enumerate(token, 1) if not "!" <= char <= "~"), None)
    if bad is not None:
        raise ConfigError(
            f"the Prometheus scrape token (prometheus_token or ${SCRAPE_TOKEN_ENV}) has a"
            f" space, control or non-ASCII character at position {bad} of {len(token)}, which"
            " a scraper's Authorization header cannot carry as it is; use only printable"
            f" ASCII, e.g. the output of {MAKE_TOKEN}"
        )
    if len(token) < MIN_SCRAPE_TOKEN:
        raise ConfigError(
            f"the Prometheus scrape token (prometheus_token or ${SCRAPE_TOKEN_ENV}) is"
            f" {len(token)} characters long; use at least {MIN_SCRAPE_TOKEN} random"
            f" characters, e.g. the output of {MAKE_TOKEN}"
        )


class AnythingConvertor(Convertor[str]):
    """A queue's or a job class's name as a route parameter: any characters, slashes and
    line breaks included. ``path``'s pattern stops at a line break, and a queue so named
    (a Ruby client accepts it) could be neither opened nor deleted."""

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("anything", AnythingConvertor())


def routes() -> list[BaseRoute]:
    return one_route_per_path([
        Route("/", dashboard.dashboard, methods=["GET"], name="dashboard"),
        Route("/stats", dashboard.stats, methods=["GET"], name="stats"),
        Route("/busy", busy.busy, methods=["GET"], name="busy"),
        Route("/busy", busy.busy_action, methods=["POST"]),
        Route("/queues", queues.queues, methods=["GET"], name="queues"),
        # The actions before the queue's page, whose :path matches their paths too: a method
        # no route takes is answered with the Allow of the first route whose path matched,
        # and a PUT on .../delete must hear POST. A GET or a POST still finds its own route.
        Route("/queues/{name:anything}/delete", queues.delete_queue, methods=["POST"]),
        Route("/queues/{name:anything}/delete_job", queues.delete_job, methods=["POST"]),
        Route("/queues/{name:anything}", queues.queue, methods=["GET"], name="queue"),
        *sets.routes(),
        Route("/metrics", metrics.overview, methods=["GET"], name="metrics"),
        Route("/prometheus", prometheus.prometheus, methods=["GET"], name="prometheus"),
        Route("/limiters", limiters.limiters, methods=["GET"], name="limiters"),
        Route("/batches", batches.batches, methods=["GET"], name="batches"),
        Route("/metrics/{name:anything}", metrics.job_class, methods=["GET"], name="metrics_class"),
        Route("/periodic", periodic_view.periodic, methods=["GET"], name="periodic"),
        Route("/periodic", periodic_view.periodic_action, methods=["POST"]),
        Route("/login", login.login_page, methods=["GET"], name="login"),
        Route("/login", login.login, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"], name="logout"),
        Mount("/static", StaticFiles(packages=[("sidequest.web", "static")]), name="static"),
    ])


def one_route_per_path(found: list[BaseRoute]) -> list[BaseRoute]:
    """``found`` with the routes of one path (a page and its form's action) made one route,
    in the place of the first. Starlette answers a method no route takes with the Allow of
    the first route whose path matched: a PUT on /busy heard "GET, HEAD", not POST."""
    paths: dict[str, list[Route]] = {}
    kept: list[BaseRoute | list[Route]] = []
    for route in found:
        if not isinstance(route, Route):
            kept.append(route)
        elif route.path in paths:
            paths[route.path].append(route)
        else:
            kept.append(paths.setdefault(route.path, [route]))
    return [joined(item) if isinstance(item, list) else item for item in kept]


def joined(same_path: list[Route]) -> Route:
    """One route taking every method of ``same_path``, each handled by its own route's app."""
    if len(same_path) == 1:
        return same_path[0]
    first = same_path[0]
    apps = {method: route.app for route in same_path for method in route.methods or ()}
    return Route(first.path, ByMethod(apps), methods=list(apps), name=first.name)


class ByMethod:
    """The ASGI app of a route that several views share: the one for the request's method
    (the route has refused any other with a 405 before calling it)."""

    def __init__(self, apps: dict[str, ASGIApp]) -> None:
        self.apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.apps[scope["method"]](scope, receive, send)
