"""Following a Sentinel failover at once.

redis-py asks the Sentinels for the primary only when it opens a connection. Pooled
connections go on talking to the old primary after a failover until the Sentinels make it a
replica, about ten seconds later, and all that while it acknowledges pushes that the new
primary never receives: jobs acknowledged and lost. Here one thread per process asks every
half second; when the primary changed, the pool drops its idle connections (redis-py's
``get_master_address`` does), so that the next command goes to the new one.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from typing import Any

#: Seconds between two questions to the Sentinels.
INTERVAL = 0.5


class _Watch:
    def __init__(self) -> None:
        self._pools: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, pool: Any) -> None:
        """Follow the primary of ``pool`` (a redis-py SentinelConnectionPool)."""
        with self._lock:
            self._pools.add(pool)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sidequest-sentinel",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        stop = threading.Event()  # never set: a daemon thread, ended with its process
        while not stop.wait(INTERVAL):
            with self._lock:
                pools = list(self._pools)
            for pool in pools:
                # The Sentinels out of reach: the next connection's own question says so.
                with contextlib.suppress(Exception):
                    pool.get_master_address()


watch = _Watch()


def _after_fork() -> None:
    # A forked child (-P) has none of its parent's threads, and makes clients of its own.
    global watch
    watch = _Watch()


os.register_at_fork(after_in_child=_after_fork)
