"""The dashboard as a WSGI application, for Flask, Django and other WSGI hosts.

The bridge is a2wsgi's ASGIMiddleware: it runs the ASGI app on an event loop in a thread of
its own and hands it each WSGI request.
"""

from __future__ import annotations

from typing import Any

from a2wsgi import ASGIMiddleware

from sidequest.web.app import create_app


def wsgi_app(**options: Any) -> ASGIMiddleware:
    """``create_app(**options)`` wrapped as a WSGI callable ``app(environ, start_response)``."""
    return ASGIMiddleware(create_app(**options))  # type: ignore[arg-type]
