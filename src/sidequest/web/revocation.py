"""Which logged-in dashboard sessions are still live, kept in Redis so that logging out
revokes the cookie in every process serving the dashboard.

A login writes ``sq:web:session:<sid>`` with the session's lifetime as its TTL; logout deletes
it. A cookie whose key is gone is treated as no login, however valid its signature. When
Redis cannot be asked, ``live`` raises: the dashboard then answers with its outage page,
not its login page, which would only fail in turn.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import redis
from starlette.concurrency import run_in_threadpool

from sidequest import connection, keys
from sidequest.web.session import new_token


class LiveSessions:
    def __init__(self, lifetime: float,
                 client: Callable[[], redis.Redis] = connection.client) -> None:
        self.lifetime = max(1, math.ceil(lifetime))
        self._client = client

    async def start(self) -> str:
        """A new live session's id. Raises redis.RedisError when Redis is unreachable."""
        sid = new_token()
        await run_in_threadpool(lambda: self._client().set(keys.web_session(sid), b"1",
                                                           ex=self.lifetime))
        return sid

    async def live(self, sid: str | None) -> bool:
        """Whether the login ``sid`` is live; raises redis.RedisError when Redis cannot say."""
        if not sid:
            return False
        # The client is made in the thread too: a cluster client reads its slot map as it is
        # made, which must not hold the event loop.
        found = await run_in_threadpool(lambda: self._client().exists(keys.web_session(sid)))
        return bool(found)

    async def end(self, sid: str | None) -> None:
        if sid:
            await run_in_threadpool(lambda: self._client().delete(keys.web_session(sid)))
