"""What ``create_app`` was told, shared by the guard and the views (``app.state.sidequest``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sidequest.web.auth import AuthPolicy
from sidequest.web.limiter import LoginLimiter
from sidequest.web.revocation import LiveSessions
from sidequest.web.session import Signer

#: The JSON poll is answered from memory when asked again within this many seconds, so many
#: open dashboards (or a page told to poll too often) cost Redis one read per second at most.
STATS_CACHE_SECONDS = 1.0
#: Sent with every response when the dashboard is told it is served over https: browsers
#: then refuse plain http to this host for a year. No includeSubDomains: that is the site's
#: decision, not the dashboard's.
HSTS = "max-age=31536000"


@dataclass(frozen=True)
class Settings:
    auth: AuthPolicy
    signer: Signer
    live: LiveSessions
    limiter: LoginLimiter
    title: str = "Sidequest"
    #: Browsers reach the dashboard over https: Secure cookie and HSTS on every response.
    https: bool = False
    #: Host headers accepted (lower case, no port); None accepts any. Set for a login-less
    #: dashboard on loopback, so that a web page cannot reach it by DNS rebinding.
    allowed_hosts: frozenset[str] | None = None
    #: The token a Prometheus scraper sends for /prometheus (``$SIDEQUEST_PROMETHEUS_TOKEN``,
    #: checked by ``create_app``); None: only a login opens it. Kept out of repr, and so of
    #: any log line or traceback that prints the settings.
    scrape_token: str | None = field(default=None, repr=False)
    #: No secret was given: this process signs with a random key of its own, which another
    #: process of the same dashboard (uvicorn --workers, gunicorn) does not know.
    random_secret: bool = False
    stats_cache: TimedCache = field(default_factory=lambda: TimedCache(STATS_CACHE_SECONDS))
    #: The same for each other shard (several Redis servers), by name.
    shard_stats_caches: dict[str, TimedCache] = field(default_factory=dict)

    def stats_cache_of(self, shard: str) -> TimedCache:
        if shard == "default":
            return self.stats_cache
        return self.shard_stats_caches.setdefault(shard, TimedCache(STATS_CACHE_SECONDS))


class TimedCache:
    """One value, recomputed when older than ``ttl`` seconds; safe across threads."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._value: Any = None
        self._at = float("-inf")

    def get(self, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if self.clock() - self._at >= self.ttl:
                self._value = compute()
                self._at = self.clock()
            return self._value

    def put(self, value: Any) -> None:
        """Store a value computed elsewhere just now (a page that read the same numbers)."""
        with self._lock:
            self._value, self._at = value, self.clock()
