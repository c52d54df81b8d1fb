"""The dashboard's session: a small signed cookie.

It carries the CSRF token, the id of a logged-in session, and a one-shot message for the
next page. The signature is HMAC-SHA256 with a key that never leaves the server (random per
process unless ``secret_key`` is set, so a restart logs everyone out) and that also covers the
password's digest, so changing the password invalidates every cookie signed before. Whether a
logged-in session is still live (not logged out) is kept in Redis (``revocation.py``).

Anything else in the cookie header is no session at all, never an error: a cookie that is
not ASCII (a sibling subdomain may set one), has the wrong parts, is not base64 or JSON, is
huge, is signed with another key, is older than ``max_age`` or claims to be issued in the
future.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

COOKIE = "sidequest_session"
#: Longer cookie values are not ours (ours is about 200 characters); they are not parsed.
MAX_COOKIE = 4096
#: How far in the future ``issued`` may be (clocks of several servers differ a little); a
#: later time would make a cookie that never expires.
CLOCK_SKEW = 60.0


def new_token() -> str:
    return secrets.token_urlsafe(32)


#: Longest flash message kept in the session cookie.
MAX_FLASH = 300


@dataclass
class Session:
    csrf: str = field(default_factory=new_token)
    #: Set once the password was given; a new session (and CSRF token) is issued then.
    user: str | None = None
    flash: str | None = None
    issued: float = field(default_factory=time.time)
    #: The logged-in session's id; it is live while Redis holds it (logout deletes it).
    sid: str | None = None
    #: When this browser was last sent to the app's login page (``login_url``): coming
    #: straight back still refused means the login page let it through, so no loop.
    to_login: float | None = None
    #: True when the cookie must be (re)written with this response.
    dirty: bool = field(default=True, compare=False)

    def pop_flash(self) -> str | None:
        message, self.flash = self.flash, None
        if message is not None:
            self.dirty = True
        return message

    def say(self, message: str) -> None:
        # The message travels in the cookie: a queue name of thousands of characters must not
        # make a cookie browsers refuse.
        if len(message) > MAX_FLASH:
            message = message[: MAX_FLASH - 1] + "…"
        self.flash = message
        self.dirty = True


class Signer:
    def __init__(self, secret: bytes, max_age: float, password_digest: bytes = b"") -> None:
        material = b"sidequest-web-session:" + secret + b"\0" + password_digest
        self._key = hashlib.sha256(material).digest()
        self.max_age = max_age

    def dumps(self, session: Session) -> str:
        data = {k: v for k, v in asdict(session).items() if k != "dirty"}
        body = _b64(json.dumps(data, separators=(",", ":")).encode())
        return body + "." + self._sign(body)

    def loads(self, value: str | None, now: float | None = None) -> Session | None:
        """The session in ``value``, or None if it is missing, forged, stale or malformed."""
        if not value or len(value) > MAX_COOKIE or not value.isascii():
            return None
        body, dot, signature = value.partition(".")
        if not dot or not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        session = _parse(body)
        if session is None or not self._fresh(session.issued, now):
            return None
        return session

    def _fresh(self, issued: float, now: float | None) -> bool:
        now = time.time() if now is None else now
        return now - self.max_age <= issued <= now + CLOCK_SKEW

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())


def _parse(body: str) -> Session | None:
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if not isinstance(data, dict):
            return None
        issued = float(data["issued"])
        csrf = data["csrf"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if not math.isfinite(issued) or not isinstance(csrf, str):
        return None
    return Session(csrf=csrf, issued=issued, dirty=False, user=_text(data.get("user")),
                   flash=_text(data.get("flash")), sid=_text(data.get("sid")),
                   to_login=_number(data.get("to_login")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cookie_values(header: str) -> list[str]:
    """Every session cookie in a Cookie ``header``, the most specific path's first. Two
    dashboards on one host name (one at /, one mounted at /sidequest, on other ports) each
    set one of that name; a request's parsed cookies keep only the last, the other one's,
    which did not verify: each request then began a new session, and every form was
    refused."""
    found = []
    for part in header.split(";"):
        name, equals, value = part.strip().partition("=")
        if equals and name.strip() == COOKIE:
            found.append(value.strip())
    return found
