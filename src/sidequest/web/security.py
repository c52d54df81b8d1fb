"""The guard in front of every route: login, CSRF, same-origin, host and response headers.

It wraps the router, so a route added later is protected without doing anything; only
``PUBLIC_PATHS`` and ``STATIC_PREFIX`` (login, logout, our own CSS and JS) are reachable
without logging in. For each request it:

1. refuses a Host header outside ``allowed_hosts`` (a login-less dashboard on loopback must
   not answer a page that rebinds its own domain to 127.0.0.1);
2. loads the signed session cookie (a logged-in one only while Redis says it is live), or
   starts a new session;
3. asks the auth policy, and answers 303 to the login page (a browser's GET, or its POST
   of one of our forms, which is then not acted on) or 401 (a script);
4. for any method but GET/HEAD, requires the request to come from our own origin
   (``Sec-Fetch-Site: same-origin``, or without it an ``Origin`` naming our host) *and* to
   carry the session's CSRF token; it parses the form once and hands it to the view;
5. adds a nonce Content-Security-Policy (no inline script, no eval), ``nosniff``,
   ``frame-ancestors 'none'``, no caching of pages, and the session cookie (HttpOnly,
   SameSite=Lax, Secure under https or when told the site is https), and HSTS when told.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote, urlsplit

import redis
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sidequest import environ
from sidequest.web import errors
from sidequest.web.formpage import PUBLIC_PATHS, SAFE_METHODS, form_page
from sidequest.web.render import route_path
from sidequest.web.session import COOKIE, Session, cookie_values
from sidequest.web.settings import HSTS, Settings

#: A Prometheus scraper cannot log in: with this variable set, ``/prometheus`` also answers a
#: request carrying ``Authorization: Bearer <its value>``. ``create_app`` reads it once and
#: refuses a token shorter than ``MIN_SCRAPE_TOKEN`` (it opens a page without the password).
SCRAPE_TOKEN_ENV = environ.PROMETHEUS_TOKEN
MIN_SCRAPE_TOKEN = 16
SCRAPE_PATH = "/prometheus"
#: Seconds after sending a browser to the app's login page within which its coming back
#: still refused is taken as the login page's forwarding, not a new visit (see
#: ``_to_login_page``). A login page forwards at once; a person typing takes longer, and
#: comes back let in.
LOGIN_BOUNCE = 10.0
STATIC_PREFIX = "/static/"
#: Said on the login page after a form was posted with a session that had ended: the action
#: was refused before it was read, so the user must do it again.
ACTION_NOT_DONE = ("Your session had ended (logged out, expired, or the dashboard restarted),"
                   " so that action was not done: log in, then do it again.")
#: Largest form accepted from a logged-in user: pages post short references to jobs (a
#: page of 1,000 selected rows is about 60 KB), never the jobs themselves.
MAX_FORM_BYTES = 1024 * 1024
#: Largest form accepted before login: the login form is a password and a token. Anything
#: bigger is refused before it is read, so nobody can make the server read and parse
#: megabytes without a password.
PUBLIC_FORM_BYTES = 8 * 1024
#: Most fields a form may have (parse_qs stops there rather than building millions).
MAX_FIELDS = 1000
#: Bodies above this are parsed on a worker thread, so the event loop keeps serving.
PARSE_ON_LOOP_BYTES = 64 * 1024
HOST_HEADER = re.compile(
    r"(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::[0-9]{1,5})?")
CSP = ("default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}';"
       " img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none';"
       " frame-ancestors 'none'")


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        nonce = secrets.token_urlsafe(16)
        path = route_path(scope)
        # Seen before any password: an error under it says nothing about the deployment.
        scope["sidequest.public"] = path in PUBLIC_PATHS or path.startswith(STATIC_PREFIX)
        try:
            session = await self._session(request)
        except errors.UNREACHABLE + errors.MISCONFIGURED as exc:
            # The login cannot be checked: the outage page (it retries), not the login page;
            # or the page that says what is wrong with the Redis URL.
            scope["sidequest.nonce"], scope["sidequest.session"] = nonce, Session(dirty=False)
            scope[errors.BEFORE_VIEW] = True  # a form's action was surely not done
            answer = (errors.redis_unreachable if isinstance(exc, errors.UNREACHABLE)
                      else errors.misconfigured)
            response = await answer(request, exc)
            await response(scope, receive, self._decorate(scope, send))
            return
        scope["sidequest.nonce"], scope["sidequest.session"] = nonce, session
        send = self._decorate(scope, send)
        refusal, receive = await self._check(request, session, receive)
        if refusal is not None:
            await refusal(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _session(self, request: Request) -> Session:
        """The request's session, or a new one; a logged-out (revoked) login counts as none."""
        session = next((found for found in map(self.settings.signer.loads,
                                               cookie_values(request.headers.get("cookie", "")))
                        if found), None)
        if session is None:
            return Session()
        if session.user is None:
            return session
        try:
            live = await self.settings.live.live(session.sid)
        except (redis.RedisError, redis.exceptions.RedisClusterException):
            if request.scope["sidequest.public"]:
                # The login page, the CSS and logout need no verdict: the cookie as it is, so
                # that a logout's token still matches and the view can say the session could
                # not be revoked, and a look at the login page does not replace the cookie.
                return session
            raise
        return session if live else Session()

    async def _check(self, request: Request, session: Session,
                     receive: Receive) -> tuple[Response | None, Receive]:
        """A response refusing the request, or None; and the body to replay to the view."""
        if not self._host_allowed(request):
            return PlainTextResponse("Unknown host", status_code=400), receive
        path = route_path(request.scope)
        public = path in PUBLIC_PATHS or path.startswith(STATIC_PREFIX)
        scraper = (path == SCRAPE_PATH and request.method in SAFE_METHODS
                   and _scraper(request, self.settings.scrape_token))
        if not (public or scraper):
            verdict, words = await self.settings.auth.verdict(request, session)
            if verdict == "refused":
                return _refused(words), receive
            if verdict == "login":
                return self._unauthenticated(request, path, session), receive
        if request.method in SAFE_METHODS:
            return None, receive
        refusal, receive = await _check_form(request, session, receive,
                                             PUBLIC_FORM_BYTES if public else MAX_FORM_BYTES,
                                             self.settings.random_secret)
        if (isinstance(refusal, TokenRefused) and session.user is not None
                and _page_wanted(request)):
            # A form from an earlier login (logged out and in again in another tab): a 403 that
            # reloading only sent again. Back to its page, which has the token of this one.
            session.say(STALE_FORM)
            return RedirectResponse(form_page(request, path), status_code=303), receive
        return refusal, receive

    def _host_allowed(self, request: Request) -> bool:
        allowed = self.settings.allowed_hosts
        if allowed is None:
            return True
        name = host_name(request.headers.get("host", ""))
        return name is not None and name in allowed

    def _unauthenticated(self, request: Request, path: str, session: Session) -> Response:
        """A browser to the login page, told where to come back; anything else a 401. A
        form posted after the session ended is not acted on (its CSRF token was the dead
        session's): the login page says so, and sends the user back to the form's page to
        do it again."""
        auth = self.settings.auth
        if not (_page_wanted(request) and (auth.has_login_page or auth.login_url)):
            return PlainTextResponse("Log in first", status_code=401)
        root = str(request.scope.get("root_path", "")).rstrip("/")
        if request.method == "GET":
            target = quote(root + path + ("?" + request.url.query if request.url.query else ""))
        else:
            target = quote(form_page(request, path))
            session.say(ACTION_NOT_DONE)
        if auth.has_login_page:
            return RedirectResponse(f"{root}/login?next={target}", status_code=303)
        assert auth.login_url is not None  # checked above
        return _to_login_page(auth.login_url, target, session)

    def _decorate(self, scope: Scope, send: Send) -> Send:
        """Add the security headers and (if it changed) the session cookie to the response."""

        # Decided now: by the time the response starts, the static files' Mount has moved
        # the scope's root path and the request's path no longer shows /static/.
        static = route_path(scope).startswith(STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                _security_headers(headers, scope, static)
                session: Session = scope["sidequest.session"]
                # Our CSS and JS are public and cacheable: no session cookie rides on them.
                if session.dirty and not static:
                    headers.append("set-cookie", self._cookie(scope, session))
                if self.settings.https:
                    headers["strict-transport-security"] = HSTS
            await send(message)

        return send_with_headers

    def _cookie(self, scope: Scope, session: Session) -> str:
        cookie: SimpleCookie = SimpleCookie()
        cookie[COOKIE] = self.settings.signer.dumps(session)
        morsel = cookie[COOKIE]
        morsel["path"] = str(scope.get("root_path", "")).rstrip("/") or "/"
        morsel["httponly"] = True
        morsel["samesite"] = "Lax"  # Strict would drop it on a link from elsewhere: a logout
        morsel["max-age"] = int(self.settings.signer.max_age)
        if self.settings.https or scope.get("scheme") == "https":
            morsel["secure"] = True
        return morsel.OutputString()


def host_name(header: str) -> str | None:
    """The name in a Host header (lower case, no port or brackets), or None unless the whole
    header is a name or address and an optional port: ``127.0.0.1:80@evil.example`` is not
    127.0.0.1."""
    found = HOST_HEADER.fullmatch(header)
    if found is None:
        return None
    return (found.group("ip6") or found.group("name")).lower()


def cross_site(request: Request) -> str | None:
    """Why the request does not come from a page of this very site, as the browser tells;
    None when it does."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return None if site == "same-origin" else f"Sec-Fetch-Site is {site!r}"
    origin = request.headers.get("origin")
    host = request.headers.get("host", "").lower()
    if not origin:
        # Every current browser sends Origin on a POST; refuse what lacks it.
        return ("the request has no Origin header (a browser sends one with every form; a"
                " script must send the dashboard's own, e.g. Origin: http://host:port)")
    if origin == "null":
        # The browser hides where the form came from, so it cannot be shown to be ours.
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return ('its Origin is "null", which a browser sends from a privacy-sensitive context'
                " (a sandboxed frame, a file:// page, a redirect from another site); submit the"
                f" form from the dashboard's own page at {request.url.scheme}://{host}{root}/,"
                " not from a saved copy or an embedded frame")
    if urlsplit(origin).netloc.lower() != host:
        return f"its Origin {origin!r} is not this dashboard's host {host!r}"
    return None


#: Said with a refused CSRF token when this process signs with a random key of its own.
STALE_FORM = ("That form was from an earlier login (or another tab's), so its action was not"
              " done: do it again here.")


class TokenRefused(PlainTextResponse):
    """The 403 of a form whose CSRF token is not the session's."""

    def __init__(self, text: str) -> None:
        super().__init__(text, status_code=403)


SEVERAL_PROCESSES = (" If reloading does not help, this dashboard may run in several processes"
                     " (uvicorn --workers, gunicorn), each signing with a random key of its own:"
                     f" give them one secret ({environ.WEB_SECRET}, or secret_key=).")


async def _check_form(request: Request, session: Session, receive: Receive,
                      limit: int, random_secret: bool = False) -> tuple[Response | None, Receive]:
    """A state-changing request: same origin, and the session's CSRF token in the form."""
    why = cross_site(request)
    if why is not None:
        return PlainTextResponse(f"Cross-site request refused: {why}", status_code=403), receive
    too_large = PlainTextResponse("Form too large", status_code=413)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return too_large, receive  # refused before a byte of it is read
    body = await _read_body(receive, limit)
    if body is None:
        return too_large, receive
    try:
        if len(body) > PARSE_ON_LOOP_BYTES:
            fields = await run_in_threadpool(_parse_form, body)
        else:
            fields = _parse_form(body)
    except ValueError:
        return PlainTextResponse("Too many form fields", status_code=413), receive
    token = (fields.get("csrf") or [request.headers.get("x-csrf-token", "")])[0]
    if not hmac.compare_digest(token.encode(), session.csrf.encode()):
        hint = SEVERAL_PROCESSES if random_secret else ""
        return TokenRefused(f"Invalid or missing CSRF token; reload the page.{hint}"), receive
    request.scope["sidequest.form"] = fields
    return None, _replay(body)


def _security_headers(headers: MutableHeaders, scope: Scope, static: bool) -> None:
    headers["content-security-policy"] = CSP.format(nonce=scope["sidequest.nonce"])
    headers["x-content-type-options"] = "nosniff"
    headers["x-frame-options"] = "DENY"
    headers["referrer-policy"] = "same-origin"
    headers["cross-origin-opener-policy"] = "same-origin"
    if not static:
        headers["cache-control"] = "private, no-store"


def _parse_form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True,
                    max_num_fields=MAX_FIELDS)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it grows past ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _page_wanted(request: Request) -> bool:
    """Whether the request is a browser's navigation (a link, a form), which a login page
    can answer: a script (fetch, XHR, curl, a monitor) gets a 401 it can read instead. A
    POST also has to come from our own pages: another site's form earns no login page."""
    if "text/html" not in request.headers.get("accept", ""):
        return False
    if request.headers.get("x-requested-with") is not None:
        return False
    mode = request.headers.get("sec-fetch-mode")
    if mode is not None and mode != "navigate":
        return False  # fetch() or XHR, whatever Accept it sends
    if request.method == "GET":
        return True
    return request.method == "POST" and cross_site(request) is None


def _to_login_page(login_url: str, target: str, session: Session) -> Response:
    """Send the browser to the app's login page, unless it was sent there moments ago and
    came straight back still refused: a login page that forwards a logged-in user to
    ``next`` (Django's, Flask-Login's) would bounce a user whom ``auth`` refuses for good."""
    now = time.time()
    if session.to_login is not None and 0 <= now - session.to_login < LOGIN_BOUNCE:
        session.to_login, session.dirty = None, True  # a visit after this one may log in
        return _refused(f"The login page sent you straight back, and you still may not see"
                        f" this dashboard: log in as a user who may, at {login_url}")
    session.to_login, session.dirty = now, True
    return RedirectResponse(_with_next(login_url, target), status_code=303)


def _refused(words: str) -> Response:
    return PlainTextResponse(words or "You may not see this dashboard.", status_code=403)


def _with_next(login_url: str, target: str) -> str:
    """The app's login page, told where to send the browser back (``next``, as Django and
    Flask-Login read it), unless its URL names a ``next`` already."""
    if "next" in parse_qs(urlsplit(login_url).query, keep_blank_values=True):
        return login_url
    return f"{login_url}{'&' if '?' in login_url else '?'}next={target}"


def _scraper(request: Request, token: str | None) -> bool:
    return bearer_matches(request.headers.get("authorization", ""), token)


def bearer_matches(authorization: str, token: str | None) -> bool:
    """An Authorization header carries the scrape token (compared in constant time); never
    true without one (``create_app`` has refused a token too short to keep out guesses)."""
    scheme, _, given = authorization.strip().partition(" ")
    # The scheme is case-insensitive (RFC 9110): "bearer" is as good as "Bearer".
    return (token is not None and scheme.lower() == "bearer"
            and hmac.compare_digest(given.strip().encode(), token.encode()))
