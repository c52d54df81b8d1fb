"""Flask integration: configuration from ``app.config``, every job run inside the app's
application context, and the dashboard mounted in the app behind the app's own check.

    pip install 'sidequest[flask]'

    from flask import Flask, session
    from sidequest.contrib.flask import Sidequest

    app = Flask(__name__)
    app.config["SIDEQUEST_REDIS_URL"] = "redis://localhost:6379/0"
    Sidequest(app, auth=lambda: session.get("role") == "admin")

Run the worker with ``sidequest -r yourapp`` (the module that creates the app and imports the
jobs), or ``sidequest -r 'yourapp:create_app()'`` with an app factory (the worker calls it),
so that it builds the same app and its jobs can use ``current_app``, extensions and
``flask.g``. ``auth`` runs inside a Flask request context built from the dashboard request,
so it can read ``flask.session`` or Flask-Login's ``current_user``.

Settings read from ``app.config`` when the extension is set up (so set them before):
``SIDEQUEST_REDIS_URL`` (where jobs go and come from), ``SIDEQUEST_SHARDS`` and
``SIDEQUEST_SHARD_QUEUES`` (dicts, as ``sidequest.configure(shards=..., shard_queues=...)``
takes them; left out, the shards an earlier ``configure()`` set are kept),
``SIDEQUEST_DASHBOARD`` (the dashboard's URL prefix, default ``/sidequest``; ``None`` for no
dashboard), ``SIDEQUEST_LOGIN_URL`` (where a browser that fails ``auth`` is sent),
``SIDEQUEST_WEB_SECRET`` (the dashboard's session secret, at least 32 bytes). Another
``SIDEQUEST_`` key is logged as ignored, with a did-you-mean. The dashboard signs its
sessions with a key derived from the app's ``secret_key``, so that every process of the app
accepts the others' forms; a secret given instead wins over it: ``secret_key=``, else
``app.config['SIDEQUEST_WEB_SECRET']``, else ``$SIDEQUEST_WEB_SECRET`` (app.config wins over
the environment, as it does for ``SIDEQUEST_REDIS_URL`` and the shards).
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
import weakref
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

try:
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("sidequest.contrib.flask needs Flask: pip install 'sidequest[flask]'"
                      ) from exc

from sidequest import connection, environ, load_checks, middleware
from sidequest.app_loader import FACTORY_NAMES
from sidequest.errors import ConfigError

log = logging.getLogger("sidequest")
DEFAULT_PREFIX = "/sidequest"
SETTINGS = ("SIDEQUEST_REDIS_URL", "SIDEQUEST_SHARDS", "SIDEQUEST_SHARD_QUEUES",
            "SIDEQUEST_DASHBOARD", "SIDEQUEST_LOGIN_URL", "SIDEQUEST_WEB_SECRET")


class AppContext:
    """Server middleware: the job runs inside the app's application context. Its coroutine
    form keeps an ``async def perform`` job on the event loop (Flask keeps the context in a
    context variable, so each job's task has its own)."""

    def __init__(self, extension: Sidequest) -> None:
        self.extension = extension

    def __call__(self, job: Any, payload: dict[str, Any], queue: str,
                 call_next: Callable[[], Any]) -> Any:
        with self._context():
            return call_next()

    async def acall(self, job: Any, payload: dict[str, Any], queue: str,
                    call_next: Callable[[], Awaitable[Any]]) -> Any:
        with self._context():
            return await call_next()

    def _context(self) -> Any:
        app = self.extension.app
        assert app is not None, "the extension's middleware is added by init_app"
        return app.app_context()


class Sidequest:
    """The extension; ``Sidequest(app, ...)`` or ``ext = Sidequest(); ext.init_app(app)``."""

    def __init__(self, app: Flask | None = None, *, auth: Callable[[], bool] | None = None,
                 **dashboard_options: Any) -> None:
        self.app: Flask | None = None
        #: The server middleware: each job runs inside the app's application context.
        self.in_app_context = AppContext(self)
        self.auth = auth
        self.dashboard_options = dashboard_options
        _made.add(self)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        _check_settings(app.config)
        prefix = _prefix(app.config.get("SIDEQUEST_DASHBOARD", DEFAULT_PREFIX))
        if prefix and self.auth is None and "password" not in self.dashboard_options:
            raise ConfigError(
                "Sidequest(app): the dashboard needs auth= (a function that says whether the "
                "current user may see it, e.g. lambda: session.get('role') == 'admin') or "
                "password=; or set app.config['SIDEQUEST_DASHBOARD'] = None for no dashboard")
        _configure(app.config)
        if prefix:  # may refuse a setting (a short secret): before anything is installed
            self._mount(app, prefix)
        self.app = app
        app.extensions["sidequest"] = self
        # Outermost of the application's middleware: one added before this (session_per_job
        # in the module that makes the app, say) runs inside the app's context, its
        # after-part too (scoped_session.remove() of Flask-SQLAlchemy's db.session needs
        # it). Not outermost of all: the worker prepends its own middleware (guards,
        # record_outcome, then the metrics recorder, outermost) in Launcher.start(), which
        # runs after -r loaded the app, so they end up ahead of this one; each start
        # prepends them again, so an app made after an embedded worker started is put in
        # order by the next start (until then its context is set up outside the recorder's
        # timing, its only effect).
        # Only the newest app's: jobs run in the app made last (a test suite makes one per
        # test), as when each was added at the end.
        for earlier in _contexts:
            middleware.server.remove(earlier)
        _contexts[:] = [self.in_app_context]
        middleware.server.prepend(self.in_app_context)
        _warn_if_environment_loses(app.config)

    def _mount(self, app: Flask, prefix: str) -> None:
        from sidequest.web.app import secret_from_host  # noqa: PLC0415 - only with a dashboard

        options = dict(self.dashboard_options)
        if self.auth is not None:
            options["auth"] = self._request_check(app, self.auth)
        login_url = app.config.get("SIDEQUEST_LOGIN_URL")
        if login_url:
            options.setdefault("login_url", login_url)
        if "secret_key" not in options:
            # app.config's secret wins over $SIDEQUEST_WEB_SECRET, as app.config's Redis URL
            # and shards win over the environment's: the app's own settings are the more
            # specific. Empty counts as unset, as it does for the variable. Without either,
            # the key is derived from the app's SECRET_KEY (None when only the variable is
            # set: the dashboard then reads the variable itself).
            options["secret_key"] = (app.config.get("SIDEQUEST_WEB_SECRET")
                                     or secret_from_host(app.secret_key))
            if options["secret_key"] is None and not os.environ.get(environ.WEB_SECRET):
                log.warning(
                    "the Flask app has no SECRET_KEY and SIDEQUEST_WEB_SECRET is not set: the"
                    " dashboard signs its sessions with a key made by this process, so a form"
                    " loaded from one process (gunicorn -w N) is refused by another and a"
                    " restart logs everyone out; set app.config['SECRET_KEY']")
        app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, {prefix: _dashboard(options)})

    @staticmethod
    def _request_check(app: Flask, auth: Callable[[], bool]) -> Callable[[Any], bool]:
        def check(request: Any) -> bool:
            # The dashboard's request, replayed as a Flask request (path and cookies), so
            # that auth sees the app's own session and login.
            headers = {"Cookie": request.headers.get("cookie", "")}
            with app.test_request_context(str(request.url.path), headers=headers):
                return bool(auth())

        return check


#: Every extension made in this process, for the worker's check that one was given its app.
_made: weakref.WeakSet[Sidequest] = weakref.WeakSet()


def _never_given_an_app(loaded: list[str]) -> str | None:
    """The worker's load check: an extension was made (``sq = Sidequest()`` beside the app
    factory) but no app was given to it, because -r named a module that imports it and the
    factory never ran. Jobs then run outside the app's context (``current_app`` fails) and
    app.config's SIDEQUEST_REDIS_URL is never read: the worker may watch another Redis."""
    if not _made or any(ext.app is not None for ext in _made):
        return None
    return ("the Flask extension Sidequest() was made but init_app(app) never ran in this"
            " worker: jobs will run outside the app's context (current_app fails) and"
            " app.config's SIDEQUEST_REDIS_URL is not read; start the worker on the app"
            f" factory: -r '{_factory_for(loaded)}'")


def _factory_for(loaded: list[str]) -> str:
    """``package:create_app()`` for the first module given to -r (or a package above it)
    that defines an app factory; a placeholder when none does."""
    for module in loaded:
        parts = module.split(".")
        for end in range(len(parts), 0, -1):
            name = ".".join(parts[:end])
            for factory in FACTORY_NAMES:
                if callable(getattr(sys.modules.get(name), factory, None)):
                    return f"{name}:{factory}()"
    return "yourapp:create_app()"


load_checks.add(_never_given_an_app)


def _dashboard(options: dict[str, Any]) -> Any:
    """The dashboard as a WSGI app, its Redis-unreachable page naming app.config's settings:
    they win over the environment variables it names otherwise (SIDEQUEST_REDIS_URL set in
    the environment changes nothing while app.config has one)."""
    from sidequest.web.app import create_app  # noqa: PLC0415 - only apps with a dashboard
    from sidequest.web.errors import SETTINGS_KEYS, SETTINGS_SOURCE  # noqa: PLC0415 - as above
    from sidequest.web.wsgi import WSGIDashboard  # noqa: PLC0415 - as above

    asgi = create_app(**options)
    setattr(asgi.state, SETTINGS_SOURCE, "app.config")
    setattr(asgi.state, SETTINGS_KEYS, {"redis_url": "SIDEQUEST_REDIS_URL",
                                        "shards": "SIDEQUEST_SHARDS"})
    return WSGIDashboard(asgi)


#: The app context middleware installed (the newest app's only).
_contexts: list[Any] = []


def _warn_if_environment_loses(config: Any) -> None:
    """Say so when $SIDEQUEST_REDIS_URL names another Redis than app.config's
    SIDEQUEST_REDIS_URL: app.config wins, and the variable was otherwise ignored without a
    word, while ``sidequest stats`` and ``status``, which never load the app, still use it.
    Not $REDIS_URL, which an app may well keep for its cache on another database."""
    url = config.get("SIDEQUEST_REDIS_URL")
    variable = environ.REDIS_URL if os.environ.get(environ.REDIS_URL) else None
    if not url or variable is None or _same_redis(os.environ[variable], str(url)):
        return
    log.warning("Sidequest(app): Redis: using %s (app.config['SIDEQUEST_REDIS_URL']), not %s"
                " ($%s): app.config wins over the environment, in this app and in a worker"
                " started on it with -r (unless its settings file or --redis-url names"
                " another); `sidequest stats` and `sidequest status`, which do not load the"
                " app, use $%s's. Set $%s to app.config's URL (or unset $%s) so that all of"
                " them use one Redis", connection.redacted(url),
                connection.redacted(os.environ[variable]), variable, variable,
                environ.REDIS_URL, variable)


def _same_redis(one: str, other: str) -> bool:
    """Whether two URLs name one Redis database (``redis://h:6379`` is ``redis://h:6379/0``)."""
    def key(url: str) -> tuple[str, str, int | None, str]:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        return (parts.scheme, parts.hostname or "", port or 6379, parts.path.strip("/") or "0")
    return one == other or key(one) == key(other)


def _configure(config: Any) -> None:
    """Point Sidequest at the app's Redis and shards. Settings left out keep what an earlier
    ``sidequest.configure()`` set: an app may configure its shards in code."""
    url = config.get("SIDEQUEST_REDIS_URL")
    shards, routes = config.get("SIDEQUEST_SHARDS"), config.get("SIDEQUEST_SHARD_QUEUES")
    try:
        if url:
            # With the client options an earlier configure() set (socket_timeout, ...).
            connection.configure(redis_url=url, shards=shards, shard_queues=routes,
                                 **connection.client_options())
        elif shards is not None or routes is not None:  # the URL an earlier call set stays
            connection.set_shards(shards, routes)
    except ConfigError as exc:
        raise ConfigError(f"Sidequest(app): app.config's SIDEQUEST_ settings: {exc}") from None


#: Settings of the standalone dashboard that the extension takes another way.
_NOT_HERE = {
    "SIDEQUEST_WEB_PASSWORD": "the dashboard in the app is guarded by Sidequest(app, auth=...)"
                              " (the app's own login), or Sidequest(app, password=...)",
}


def _check_settings(config: Any) -> None:
    """Point out a ``SIDEQUEST_`` key the extension does not read: a misspelt setting was
    ignored without a word. Logged, not refused: an app may keep constants of its own."""
    for key in config:
        if key.startswith("SIDEQUEST_") and key not in SETTINGS:
            close = difflib.get_close_matches(key, SETTINGS, 1)
            hint = (_NOT_HERE.get(key) or (f"did you mean {close[0]!r}?" if close
                                           else f"it reads {', '.join(SETTINGS)}"))
            log.warning("Sidequest(app): app.config[%r] is not a setting of the extension and"
                        " is ignored; %s", key, hint)


def _prefix(value: Any) -> str | None:
    """The dashboard's URL prefix as werkzeug's dispatcher matches it: one leading slash, none
    at the end ("sidequest" or "/sidequest/" mounted nothing, without a word)."""
    if not value:
        return None
    path = "/" + str(value).strip().strip("/")
    if path == "/":
        raise ConfigError(f"Sidequest(app): SIDEQUEST_DASHBOARD={value!r} would cover the whole"
                          " app; give it a path of its own, e.g. '/sidequest', or None for no"
                          " dashboard")
    return path
