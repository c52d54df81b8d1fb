"""The login and logout pages of the built-in password login."""

from __future__ import annotations

import asyncio
import math
import secrets

import redis
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sidequest import connection, url_problems
from sidequest.web import render
from sidequest.web.errors import REDIS_DOWN
from sidequest.web.formpage import safe_next
from sidequest.web.session import Session

NOT_HERE = "This dashboard uses the application's own login."
#: The same page on a dashboard started with no login (no password, on the loopback).
NO_LOGIN = ("This dashboard asks for no login: it was started without a password"
            " (SIDEQUEST_WEB_PASSWORD sets one).")
#: What the login page puts on its CSS and JS links to refresh browsers' copies, in place of
#: the version the other pages use: a visitor who has not logged in is not told which
#: Sidequest runs here. New for each process, so an upgrade (a restart) still refreshes them.
ASSET_TAG = secrets.token_urlsafe(6)


NOT_LOGGED_OUT = ("Redis is not answering, so this session could not be ended: you are still"
                  " logged in. Log out again in a moment.")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login_page(request: Request) -> Response:
    settings = render.settings(request)
    if not settings.auth.has_login_page:
        if settings.auth.login_url:
            return RedirectResponse(settings.auth.login_url, status_code=303)
        return render.text(NO_LOGIN if settings.auth.insecure else NOT_HERE, 404)
    target = safe_next(request, request.query_params.get("next"))
    if await _logged_in(request):  # a form is no use: on to the page
        return RedirectResponse(target, status_code=303)
    return login_form(request, target)


async def _logged_in(request: Request) -> bool:
    """Whether the session is a live login. On this public page the guard lets a session
    whose liveness it could not check through as it is: with Redis down the form shows, as
    every other page shows the outage."""
    session = render.session(request)
    if session.user is None:
        return False
    try:
        return await render.settings(request).live.live(session.sid)
    except (redis.RedisError, redis.exceptions.RedisClusterException):
        return False


def login_form(request: Request, target: str, status_code: int = 200,
               **context: str) -> Response:
    """The login page, for visitors not logged in: the form and the dashboard's title, no
    tabs, shard names or version (nothing about the deployment before the password)."""
    return render.page(request, "login.html", "Log in", status_code=status_code, next=target,
                       bare=True, asset_tag=ASSET_TAG, **context)


#: A login writes its session: while Redis refuses writes, none can be made.
WRITES_REFUSED = ("Redis refuses writes for now (a failover waiting for a replica to catch up,"
                  " say), so no session can be started; try again in a moment.")

#: Said once the answers slow down: a page that spun for 10 s looked broken.
SLOWED = (" After a few wrong passwords each answer waits longer (up to {:g} s) to slow"
          " guessing; the right password still logs in.")


async def login(request: Request) -> Response:
    settings = render.settings(request)
    form = render.form(request)
    address = client_address(request)
    if not settings.auth.has_login_page:
        return render.text(NO_LOGIN if settings.auth.insecure else NOT_HERE, 404)
    target = safe_next(request, form.get("next"))
    try:
        admission = await settings.limiter.admit(address)
        if admission.retry_after is not None:
            return too_many(request, target, admission.retry_after)
        # Every attempt waits its turn before the password is checked, the right one too:
        # answering it sooner would tell a guesser which guess was right.
        await asyncio.sleep(admission.wait)
        if not settings.auth.password_ok(form.get("password", "")):
            await settings.limiter.failed(address)
            return login_form(request, target, 401, error="Wrong password." + (
                SLOWED.format(settings.limiter.max_delay)
                if admission.slowed else ""))
        # The failures before it were typos: the address's next login is not delayed.
        await settings.limiter.succeeded(address)
        sid = await settings.live.start()
    except redis.RedisError as exc:
        if connection.url_problem(exc, connection.redacted()) is not None:
            raise  # the URL is wrong (MOVED: a cluster node): web/errors.misconfigured says so
        if url_problems.refused_for_now(exc):  # answering, but refusing writes (a failover
            return render.text(WRITES_REFUSED, 503)  # waiting for a replica): not "down"
        return render.text(REDIS_DOWN, 503)
    # A fresh session (and CSRF token) at login: a token seen before it is worth nothing.
    request.scope["sidequest.session"] = Session(user="admin", sid=sid)
    return RedirectResponse(target, status_code=303)


def too_many(request: Request, target: str, retry_after: float) -> Response:
    """Refused before the password is checked: the form again, so that a person who pressed
    twice reads why and can send it again (a script reads the status and Retry-After)."""
    seconds = max(1, math.ceil(retry_after))
    answer = login_form(request, target, 429, error=f"Too many login attempts from this address;"
                        f" try again in {render.plural(seconds, 'second')}. The password was not"
                        f" checked.")
    answer.headers["retry-after"] = str(seconds)
    return answer


async def logout(request: Request) -> Response:
    settings = render.settings(request)
    try:
        await settings.live.end(render.session(request).sid)
    except redis.RedisError:
        return render.text(NOT_LOGGED_OUT, 503)
    request.scope["sidequest.session"] = Session()
    if settings.auth.has_login_page:
        return RedirectResponse(render.root(request) + "/login", status_code=303)
    return RedirectResponse(settings.auth.login_url or render.root(request) + "/", status_code=303)
