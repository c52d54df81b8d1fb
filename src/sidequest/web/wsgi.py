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

from a2wsgi import ASGIMiddleware
from a2wsgi.wsgi_typing import Environ
from starlette.types import ASGIApp, Receive, Scope, Send

from sidequest.web.app import create_app

log = logging.getLogger("sidequest.web")


class WSGIDashboard:
    """A WSGI callable ``app(environ, start_response)`` serving an ASGI app through a2wsgi;
    every request has finished (its ASGI task done) by the time the call returns."""

    def __init__(self, asgi_app: Any) -> None:
        self.bridge = ASGIMiddleware(cast(Any, _logging_errors(asgi_app)))

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> list[bytes]:
        # The dashboard's responses are finite and small (pages, JSON, a few KB of CSS and
        # JS; it streams nothing), so holding one whole costs little.
        return list(self.bridge(cast(Environ, environ), start_response))


def wsgi_app(**options: Any) -> WSGIDashboard:
    """``create_app(**options)`` wrapped as a WSGI callable ``app(environ, start_response)``."""
    return WSGIDashboard(create_app(**options))


def _logging_errors(app: ASGIApp) -> ASGIApp:
    """Log an error no view expected, then raise it on. An ASGI server logs what the app
    raises; a2wsgi stops listening once the 500 page is sent, and drops it unseen."""

    async def app_logging_errors(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except Exception:
            log.exception("dashboard: error in %s %s", scope.get("method"), scope.get("path"))
            raise

    return app_logging_errors
