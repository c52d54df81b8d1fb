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

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from sidequest.web.session import Session

#: ``auth(request) -> bool``, plain or async: True lets the request in. A plain function runs
#: in a worker thread, so it may use a blocking ORM (Django) or a framework's session.
AuthCallable = Callable[[Request], "bool | Awaitable[bool]"]


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

    async def allows(self, request: Request, session: Session) -> bool:
        if self.callback is not None:
            if inspect.iscoroutinefunction(self.callback):
                return bool(await self.callback(request))
            result = await run_in_threadpool(self.callback, request)
            return bool(await result) if inspect.isawaitable(result) else bool(result)
        if self.password_digest is not None:
            return session.user is not None
        return self.insecure
