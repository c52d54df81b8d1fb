"""The dashboard as a WSGI application, for Flask, Django and other WSGI hosts.

The bridge is a2wsgi's ASGIMiddleware: it runs the ASGI app on an event loop in a thread of
its own and hands it each WSGI request. Each response is read to its end before it is handed
to the WSGI server, for a reason of a2wsgi's making: its response iterable passes the ASGI
app each message it waits for only while it is being read, so a response closed or dropped
before its end (a client that hangs up, a test client whose response is never read) left the
app's task waiting for good: a task and its request kept alive, and "Task was destroyed but
it is pending!" at exit. Reading it in the iterable's ``close()`` instead cannot work either:
a response dropped at interpreter exit is closed after the loop's thread has stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote

from a2wsgi import ASGIMiddleware
from a2wsgi.wsgi_typing import Environ
from starlette.types import ASGIApp, Receive, Scope, Send

from sidequest.web.app import create_app

log = logging.getLogger("sidequest.web")
#: Where ``_lenient_path`` keeps the path's bytes for the ASGI scope's ``raw_path``.
RAW_PATH = "sidequest.raw_path"


class WSGIDashboard:
    """A WSGI callable ``app(environ, start_response)`` serving an ASGI app through a2wsgi;
    every request has finished (its ASGI task done) by the time the call returns."""

    def __init__(self, asgi_app: Any) -> None:
        self.bridge = ASGIMiddleware(cast(Any, _logging_errors(asgi_app)))

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> list[bytes]:
        _lenient_path(environ)
        # The dashboard's responses are finite and small (pages, JSON, a few KB of CSS and
        # JS; it streams nothing), so holding one whole costs little.
        return list(self.bridge(cast(Environ, environ), start_response))


def wsgi_app(**options: Any) -> WSGIDashboard:
    """``create_app(**options)`` wrapped as a WSGI callable ``app(environ, start_response)``."""
    return WSGIDashboard(create_app(**options))


def _lenient_path(environ: dict[str, Any]) -> None:
    """a2wsgi decodes the path as strict UTF-8 and fails on a byte that is not (the link to
    a queue whose name is not UTF-8, ``/queues/q%FF``). Such a path is handed on decoded
    leniently, as ASGI servers do, with its bytes kept for the scope's ``raw_path``, where
    ``render.exact_param`` finds the exact name."""
    parts = [str(environ.get(key, "")).encode("latin-1", "replace")
             for key in ("SCRIPT_NAME", "PATH_INFO")]
    try:
        for part in parts:
            part.decode("utf-8")
    except UnicodeDecodeError:
        environ[RAW_PATH] = quote(b"".join(parts), safe="/").encode("ascii")
        # WSGI carries the path's bytes as latin-1 text: the same, each odd byte now U+FFFD.
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = (
            part.decode("utf-8", "replace").encode("utf-8").decode("latin-1") for part in parts)


def _logging_errors(app: ASGIApp) -> ASGIApp:
    """Log an error no view expected, then raise it on. An ASGI server logs what the app
    raises; a2wsgi stops listening once the 500 page is sent, and drops it unseen. Also
    gives the scope the raw path ``_lenient_path`` kept (a2wsgi sets none)."""

    async def app_logging_errors(scope: Scope, receive: Receive, send: Send) -> None:
        raw_path = scope.get("wsgi_environ", {}).get(RAW_PATH)
        if raw_path is not None and "raw_path" not in scope:
            scope["raw_path"] = raw_path
        try:
            await app(scope, receive, send)
        except Exception:
            log.exception("dashboard: error in %s %s", scope.get("method"), scope.get("path"))
            raise

    return app_logging_errors
