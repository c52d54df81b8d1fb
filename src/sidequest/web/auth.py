"""Who may use the dashboard: the built-in password login, or the host application's own
check (an auth callable). The login page itself is in ``views/login.py``.

The password is compared as SHA-256 digests with ``hmac.compare_digest``, so neither its
length nor its content leaks through timing; failed logins are limited per client address.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from sidequest.web.session import Session

#: ``auth(request) -> bool``, plain or async: True lets the request in. A plain function runs
#: in a worker thread, so it may use a blocking ORM (Django) or a framework's session.
AuthCallable = Callable[[Request], "bool | Awaitable[bool]"]
#: Client addresses remembered by the limiter; the oldest are forgotten beyond this.
MAX_TRACKED = 10_000


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


class LoginLimiter:
    """At most ``limit`` failed logins per client address in any ``window`` seconds."""

    def __init__(self, limit: int = 20, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, address: str) -> bool:
        failures = self._failures.get(address)
        if failures is None:
            return False
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
        return len(failures) >= self.limit

    def failed(self, address: str) -> None:
        if address not in self._failures and len(self._failures) >= MAX_TRACKED:
            del self._failures[next(iter(self._failures))]
        self._failures.setdefault(address, deque()).append(self.clock())
