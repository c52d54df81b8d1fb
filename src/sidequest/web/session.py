"""The dashboard's session: a small signed cookie, no server-side store.

It carries the CSRF token, whether the password was given, and a one-shot message for the
next page. The signature is HMAC-SHA256 with a key that never leaves the server (random per
process unless ``secret_key`` is set, so a restart logs everyone out), and an expired or
tampered cookie is treated as no cookie at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

COOKIE = "sidequest_session"


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Session:
    csrf: str = field(default_factory=new_token)
    #: Set once the password was given; a new session (and CSRF token) is issued then.
    user: str | None = None
    flash: str | None = None
    issued: float = field(default_factory=time.time)
    #: True when the cookie must be (re)written with this response.
    dirty: bool = field(default=True, compare=False)

    def pop_flash(self) -> str | None:
        message, self.flash = self.flash, None
        if message is not None:
            self.dirty = True
        return message

    def say(self, message: str) -> None:
        self.flash = message
        self.dirty = True


class Signer:
    def __init__(self, secret: bytes, max_age: float) -> None:
        self._key = hashlib.sha256(b"sidequest-web-session:" + secret).digest()
        self.max_age = max_age

    def dumps(self, session: Session) -> str:
        data = {k: v for k, v in asdict(session).items() if k != "dirty"}
        body = _b64(json.dumps(data, separators=(",", ":")).encode())
        return body + "." + self._sign(body)

    def loads(self, value: str | None, now: float | None = None) -> Session | None:
        """The session in ``value``, or None if it is missing, forged, stale or malformed."""
        if not value or "." not in value:
            return None
        body, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            padded = body + "=" * (-len(body) % 4)
            data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
            user, flash = data.get("user"), data.get("flash")
            session = Session(csrf=str(data["csrf"]), issued=float(data["issued"]), dirty=False,
                              user=user if isinstance(user, str) else None,
                              flash=flash if isinstance(flash, str) else None)
        except (ValueError, KeyError, TypeError):
            return None
        if (now if now is not None else time.time()) - session.issued > self.max_age:
            return None
        return session

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
