"""The login and logout pages of the built-in password login."""

from __future__ import annotations

import asyncio
import math
from urllib.parse import urlsplit

import redis
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sidequest.web import render
from sidequest.web.session import Session

NOT_HERE = "This dashboard uses the application's own login."
REDIS_DOWN = "Redis is not answering; try again in a moment."


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after logging in: a path inside the dashboard, never another site."""
    root = render.root(request)
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith(root + "/"):
            return target
    return root + "/"


async def login_page(request: Request) -> Response:
    settings = render.settings(request)
    if not settings.auth.has_login_page:
        if settings.auth.login_url:
            return RedirectResponse(settings.auth.login_url, status_code=303)
        return render.text(NOT_HERE, 404)
    return render.page(request, "login.html", "Log in",
                       next=safe_next(request, request.query_params.get("next")))


async def login(request: Request) -> Response:
    settings = render.settings(request)
    form = render.form(request)
    address = client_address(request)
    if not settings.auth.has_login_page:
        return render.text(NOT_HERE, 404)
    target = safe_next(request, form.get("next"))
    try:
        admission = await settings.limiter.admit(address)
        if admission.retry_after is not None:
            return too_many(admission.retry_after)
        # Every attempt waits its turn before the password is checked, the right one too:
        # answering it sooner would tell a guesser which guess was right.
        await asyncio.sleep(admission.wait)
        if not settings.auth.password_ok(form.get("password", "")):
            await settings.limiter.failed(address)
            return render.page(request, "login.html", "Log in", status_code=401, next=target,
                               error="Wrong password.")
        sid = await settings.live.start()
    except redis.RedisError:
        return render.text(REDIS_DOWN, 503)
    # A fresh session (and CSRF token) at login: a token seen before it is worth nothing.
    request.scope["sidequest.session"] = Session(user="admin", sid=sid)
    return RedirectResponse(target, status_code=303)


def too_many(retry_after: float) -> Response:
    seconds = max(1, math.ceil(retry_after))
    answer = render.text(f"Too many login attempts; try again in {seconds} seconds.", 429)
    answer.headers["retry-after"] = str(seconds)
    return answer


async def logout(request: Request) -> Response:
    settings = render.settings(request)
    try:
        await settings.live.end(render.session(request).sid)
    except redis.RedisError:
        return render.text(REDIS_DOWN, 503)  # the session could not be revoked: say so
    request.scope["sidequest.session"] = Session()
    if settings.auth.has_login_page:
        return RedirectResponse(render.root(request) + "/login", status_code=303)
    return RedirectResponse(settings.auth.login_url or render.root(request) + "/", status_code=303)
