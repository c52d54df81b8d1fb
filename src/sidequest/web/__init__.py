"""The Sidequest dashboard: Sidekiq Web's tabs and actions as an ASGI application.

    from sidequest.web import create_app
    app.mount("/sidequest", create_app(auth=is_staff))      # FastAPI / Starlette

    from sidequest.web import wsgi_app                       # Flask / Django (WSGI)

Needs the ``web`` extra (``pip install 'sidequest[web]'``). ``import sidequest`` never
imports this package.
"""

from __future__ import annotations

try:
    import jinja2  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "the Sidequest dashboard needs its extra: pip install 'sidequest[web]'"
    ) from exc

from sidequest.web.app import create_app
from sidequest.web.wsgi import wsgi_app

__all__ = ["create_app", "wsgi_app"]
