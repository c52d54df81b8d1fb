"""Wake an idle fetcher the moment a job is pushed to any of its queues.

Redis has no blocking move across several lists, so a worker with several queues would have
to poll. Instead, while idle, it asks Redis for client-side-caching invalidations in
broadcast mode (``CLIENT TRACKING ON BCAST PREFIX queue:<name> ...``, Redis 6+): any write
to those keys, from any client (Ruby Sidekiq's included), sends a message to our subscriber
connection, and the fetcher looks again. Tracking is switched off while busy, because then
every fetch would send us a message. Where tracking is unavailable the caller falls back to
polling.
"""

from __future__ import annotations

import logging
import os
import select
from typing import Any

import redis

log = logging.getLogger("sidequest")
CHANNEL = "__redis__:invalidate"


class Waker:
    def __init__(self, client: redis.Redis, queue_keys: list[str]) -> None:
        self.client = client
        self.queue_keys = queue_keys
        self.armed = False
        self.unsupported = False
        # redis-py's raw connections: typed loosely in its stubs, hence Any.
        self._tracker: Any = None
        self._listener: Any = None
        self._listener_id = 0
        self._interrupt_r, self._interrupt_w = os.pipe()
        os.set_blocking(self._interrupt_w, False)

    def arm(self) -> bool:
        """Start receiving invalidations (if not already); False if Redis cannot."""
        if self.unsupported:
            return False
        if self.armed:
            return True
        if not hasattr(self.client, "connection_pool"):
            # A Redis Cluster client has a pool per node and no one connection to track on.
            log.info("Redis Cluster: idle workers poll their queues")
            self.unsupported = True
            return False
        try:
            self._connect()
            assert self._tracker is not None and self._listener is not None
            prefixes: list[str] = []
            for key in self.queue_keys:
                prefixes += ["PREFIX", key]
            self._tracker.send_command("CLIENT", "TRACKING", "ON", "REDIRECT",
                                       self._listener_id, "BCAST", *prefixes)
            self._tracker.read_response()
        except redis.ResponseError as exc:
            log.info("Redis cannot notify idle workers (%s); polling instead", exc)
            self.unsupported = True
            self.close()
            return False
        except redis.RedisError:
            self.close()
            raise
        self.armed = True
        return True

    def disarm(self) -> None:
        """Stop invalidations while busy; they would arrive with every fetch."""
        if not self.armed or self._tracker is None:
            return
        try:
            self._tracker.send_command("CLIENT", "TRACKING", "OFF")
            self._tracker.read_response()
            self._drain()
        except redis.RedisError:
            self.close()
            raise
        self.armed = False

    def wait(self, timeout: float) -> bool:
        """Block until a watched queue changes (True), or ``timeout`` passes or interrupt()
        is called (False)."""
        assert self._listener is not None
        try:
            if not self._listener.can_read(timeout=0):
                sock = self._listener._sock
                ready, _, _ = select.select([sock, self._interrupt_r], [], [], timeout)
                if self._interrupt_r in ready:
                    os.read(self._interrupt_r, 4096)
                    return False
                if not ready:
                    return False
            self._drain()
        except redis.RedisError:
            self.close()
            raise
        return True

    def interrupt(self) -> None:
        """Wake a wait() in another thread (shutdown)."""
        if self._interrupt_w >= 0:
            os.write(self._interrupt_w, b"x")

    def _drain(self) -> None:
        """Read every message already here: one wake-up covers them all."""
        assert self._listener is not None
        while self._listener.can_read(timeout=0):
            self._listener.read_response(push_request=True)

    def _connect(self) -> None:
        if self._tracker is not None:
            return
        pool: Any = self.client.connection_pool
        listener = pool.make_connection()
        listener.connect()
        listener.send_command("CLIENT", "ID")
        self._listener_id = int(listener.read_response())
        listener.send_command("SUBSCRIBE", CHANNEL)
        # Under RESP3 (redis-py's default protocol may be 3) pub/sub replies are push
        # messages, which read_response skips unless asked for them.
        listener.read_response(push_request=True)
        tracker = pool.make_connection()
        tracker.connect()
        self._listener, self._tracker = listener, tracker

    def dispose(self) -> None:
        """Close everything for good (the worker is stopping)."""
        self.close()
        for fd in (self._interrupt_r, self._interrupt_w):
            os.close(fd)
        self._interrupt_r = self._interrupt_w = -1

    def close(self) -> None:
        for conn in (self._tracker, self._listener):
            if conn is not None:
                conn.disconnect()
        self._tracker = self._listener = None
        self.armed = False
