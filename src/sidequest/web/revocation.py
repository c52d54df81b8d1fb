"""Which logged-in dashboard sessions are still live, kept in Redis so that logging out
revokes the cookie in every process serving the dashboard.

A login writes ``sq:web:session:<sid>`` with the session's lifetime as its TTL; logout deletes
it. A cookie whose key is gone is treated as no login, however valid its signature. When
Redis cannot be asked, the session counts as logged out (the pages need Redis anyway).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import redis
from starlette.concurrency import run_in_threadpool

from sidequest import connection, keys
from sidequest.web.session import new_token

log = logging.getLogger(__name__)


class LiveSessions:
    def __init__(self, lifetime: float,
                 client: Callable[[], redis.Redis] = connection.client) -> None:
        self.lifetime = max(1, math.ceil(lifetime))
        self._client = client

    async def start(self) -> str:
        """A new live session's id. Raises redis.RedisError when Redis is unreachable."""
        sid = new_token()
        await run_in_threadpool(self._client().set, keys.web_session(sid), b"1",
                                ex=self.lifetime)
        return sid

    async def live(self, sid: str | None) -> bool:
        if not sid:
            return False
        try:
            found = await run_in_threadpool(self._client().exists, keys.web_session(sid))
        except redis.RedisError as exc:
            log.warning("dashboard: cannot check a session in Redis (%s); treated as logged"
                        " out", exc)
            return False
        return bool(found)

    async def end(self, sid: str | None) -> None:
        if sid:
            await run_in_threadpool(self._client().delete, keys.web_session(sid))
