"""Who may use the dashboard: the built-in password login, or the host application's own
check (an auth callable). The login page itself is in ``views/login.py``.

The password is compared as SHA-256 digests with ``hmac.compare_digest``, so neither its
length nor its content leaks through timing; failed logins slow down further attempts
(``limiter.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from sidequest.web.session import Session

#: ``auth(request) -> bool``, plain or async: True lets the request in, False sends a browser
#: to log in, and PermissionError("words") says a logged-in user may not (a 403; one with an
#: errno is the OS's, an error of the check). A plain function runs in a worker thread, so
#: it may use a blocking ORM (Django) or a framework's session.
AuthCallable = Callable[[Request], "bool | Awaitable[bool]"]

#: What the check says of a request: let it in, send it to log in, or refuse it.
Verdict = Literal["in", "login", "refused"]


def digest(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8")).digest()


@dataclass(frozen=True)
class AuthPolicy:
    """Exactly one of: a password digest, a callable, or ``insecure`` (no login at all)."""

    password_digest: bytes | None = None
    callback: AuthCallable | None = None
    login_url: str | None = None
    insecure: bool = False

    @property
    def has_login_page(self) -> bool:
        return self.password_digest is not None

    def password_ok(self, candidate: str) -> bool:
        if self.password_digest is None:
            return False
        return hmac.compare_digest(digest(candidate), self.password_digest)

    async def verdict(self, request: Request, session: Session) -> tuple[Verdict, str]:
        """The verdict, and the callback's own words for a refusal (may be empty)."""
        if self.callback is None:
            allowed = (session.user is not None if self.password_digest is not None
                       else self.insecure)
            return ("in" if allowed else "login"), ""
        try:
            allowed = await self._call(request)
        except PermissionError as exc:
            if exc.errno is not None:  # the OS refused the check a file: its error, a 500
                raise
            return "refused", str(exc)
        return ("in" if allowed else "login"), ""

    async def _call(self, request: Request) -> bool:
        assert self.callback is not None
        if inspect.iscoroutinefunction(self.callback):
            return bool(await self.callback(request))
        result = await run_in_threadpool(self.callback, request)
        return bool(await result) if inspect.isawaitable(result) else bool(result)
