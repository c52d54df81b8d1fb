"""The dashboard as a Django view, for staff only: a logged-in user with ``is_staff`` sees
it (with ``SIDEQUEST['dashboard_permission']`` set, a user with that permission instead);
an anonymous visitor's browser is sent to ``settings.LOGIN_URL`` (a script, such as
the live graph's poll, gets 401); other users get 403. A Prometheus
scraper cannot log in: with ``$SIDEQUEST_PROMETHEUS_TOKEN`` set, ``prometheus`` (that page
only) also answers a GET carrying ``Authorization: Bearer <the token>``.

The dashboard is Sidequest's own WSGI app (``sidequest.web``), called with the Django
request's environ under the URL it is mounted at; it keeps its own CSRF token on its forms,
and the check of who may use it is Django's, made here before the app is called.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt

from sidequest.contrib.django import conf

_app: Any = None
_token: str | None = None  # the scrape token, read (and checked) with the app
_lock = threading.Lock()


#: Without the app, SIDEQUEST is never read: the dashboard would show the default Redis.
NOT_INSTALLED = ("the Sidequest dashboard is mounted, but 'sidequest.contrib.django' is not in"
                 " INSTALLED_APPS, so its SIDEQUEST settings (the Redis to show) are not read;"
                 " add it to INSTALLED_APPS")


def _dashboard() -> Any:
    global _app, _token
    # A bad SIDEQUEST: the dashboard would show the default Redis as if it were the project's.
    conf.raise_problem()
    with _lock:
        if _app is None:
            if not django_apps.is_installed("sidequest.contrib.django"):
                raise ImproperlyConfigured(NOT_INSTALLED)
            # The web extra, on first use.
            from sidequest.web.app import (  # noqa: PLC0415
                create_app,
                scrape_token,
                secret_from_host,
            )
            from sidequest.web.errors import SETTINGS_SOURCE  # noqa: PLC0415
            from sidequest.web.wsgi import WSGIDashboard  # noqa: PLC0415

            # insecure=True: no login of the dashboard's own; only staff reach it (below).
            # The signing key comes from SECRET_KEY, so that every process serving the site
            # accepts a form loaded from another.
            asgi = create_app(insecure=True, secret_key=secret_from_host(settings.SECRET_KEY))
            # The Redis-unreachable page then says to set the URL in SIDEQUEST, which wins
            # over the environment variables it names otherwise.
            setattr(asgi.state, SETTINGS_SOURCE, conf.SOURCE)
            _app = WSGIDashboard(asgi)
            _token = scrape_token()
        return _app


def _scraper(request: HttpRequest, path: str) -> bool:
    if path.strip("/") != "prometheus" or request.method not in ("GET", "HEAD"):
        return False
    from sidequest.web.security import bearer_matches  # noqa: PLC0415 - as above

    _dashboard()
    return bearer_matches(request.headers.get("Authorization", ""), _token)


@csrf_exempt
def dashboard(request: HttpRequest, path: str = "") -> HttpResponse:
    if _scraper(request, path):
        return _call_wsgi(request, path)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        if not _page_wanted(request):
            return HttpResponse("Log in first", status=401,
                                content_type="text/plain; charset=utf-8")
        return redirect_to_login(request.get_full_path())
    refused = _refusal(user)
    if refused is not None:
        return HttpResponseForbidden(refused)
    return _call_wsgi(request, path)


def _refusal(user: Any) -> str | None:
    """Why a logged-in ``user`` may not see the dashboard; None when they may."""
    permission = conf.dashboard_permission()
    if permission is None:
        return None if user.is_staff else "The Sidequest dashboard is for staff users."
    # has_perm, not is_staff as well: a project that names a permission decides alone who
    # has it (superusers have every one, as Django makes them).
    if user.has_perm(permission):
        return None
    return (f"The Sidequest dashboard needs the permission {permission!r}"
            f" (SIDEQUEST['dashboard_permission']); ask an administrator to grant it.")


def _page_wanted(request: HttpRequest) -> bool:
    """A browser's navigation (a link, a form), which the login page can answer. A script
    (the live graph's fetch, XHR, curl, a monitor) gets a 401 instead, as from the standalone
    dashboard (sidequest.web.security): a redirect is followed to the login page's HTML,
    which the graph cannot read, so it said the dashboard was not answering where a 401
    makes it say to log in again."""
    if "text/html" not in request.headers.get("Accept", ""):
        return False
    if request.headers.get("X-Requested-With") is not None:
        return False
    mode = request.headers.get("Sec-Fetch-Mode")
    return mode is None or mode == "navigate"  # fetch() and XHR say cors, same-origin...


def _call_wsgi(request: HttpRequest, path: str) -> HttpResponse:
    environ = dict(request.META)
    # request.path is the whole path (SCRIPT_NAME included); the captured ``path`` is the
    # dashboard's own part, so what precedes it is where the dashboard is mounted.
    environ["SCRIPT_NAME"] = request.path[: len(request.path) - len(path)].rstrip("/")
    # lstrip: mounted without a trailing slash (path("sidequest", ...)), the captured path
    # of /sidequest/queues starts with one, and "//queues" would be no page.
    environ["PATH_INFO"] = "/" + path.lstrip("/")
    # The host Django checked against ALLOWED_HOSTS (the dashboard compares a form's Origin
    # with it); a client may have sent none.
    environ["HTTP_HOST"] = request.get_host()
    environ["wsgi.input"] = io.BytesIO(request.body)
    environ["CONTENT_LENGTH"] = str(len(request.body))
    # Django's scheme, which honours SECURE_PROXY_SSL_HEADER: behind a TLS proxy the
    # server's own wsgi.url_scheme says http, and the dashboard's cookie would not be Secure.
    environ["wsgi.url_scheme"] = request.scheme
    environ.setdefault("wsgi.errors", io.StringIO())
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        started["status"], started["headers"] = status, headers
        return lambda data: None

    chunks = _dashboard()(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    response = HttpResponse(body, status=int(started["status"].split(" ", 1)[0]))
    for name, value in started["headers"]:
        if name.lower() == "set-cookie":
            # Several cookies: Django keeps one header per name, so parse them into its jar.
            response.cookies.load(value)
        else:
            response[name] = value
    return response
