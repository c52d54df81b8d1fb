"""A worker process's heartbeat loop, and its first beat, which waits for Redis: a mixin of
the Launcher, which sets every attribute below and defines ``_check_memory``."""

from __future__ import annotations

import logging
import threading
import time

import redis

from sidequest import connection
from sidequest.config import Config
from sidequest.worker.heartbeat import Heartbeat
from sidequest.worker.manager import Manager
from sidequest.worker.redis_wait import Outage, say_waiting

log = logging.getLogger("sidequest")

#: How often the main thread looks for a requested stop. It sleeps rather than waiting on
#: the stop_requested Event: the signal handlers set that Event in this same thread, and
#: Event.set blocks on the lock that Event.wait holds for a few steps at each wake-up, so a
#: signal landing there would hang the process for good.
NAP = 0.1
#: Seconds between heartbeats while Redis fails, so that the lease is renewed, and fetching
#: resumes, soon after it is back.
BEAT_RETRY = 0.5


class Beating:
    config: Config
    heartbeat: Heartbeat
    manager: Manager
    stop_requested: threading.Event
    stopping: threading.Event
    _client: redis.Redis

    def _check_memory(self) -> None:
        raise NotImplementedError  # the Launcher's

    def _first_beat(self) -> None:
        delay, warned = 0.1, False
        while True:
            try:
                self.heartbeat.beat()
                return
            except redis.RedisError as exc:
                if self.stop_requested.is_set():
                    raise
                problem = connection.url_problem(exc, connection.redacted())
                if problem is not None:  # no wait fixes a URL: say so and exit 2
                    raise problem from exc
                warned = warned or say_waiting(exc)
                self._nap(delay)
                delay = min(delay * 2, 2.0)

    def _nap(self, seconds: float) -> None:
        """Sleep up to ``seconds``, less once a stop is requested (see NAP)."""
        end = time.monotonic() + seconds
        while not self.stop_requested.is_set() and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, NAP))

    def _beat_loop(self) -> None:
        outage = Outage("heartbeat")
        while not self._until_beat(BEAT_RETRY if outage.failing
                                   else self.config.heartbeat_interval):
            self._check_memory()
            try:
                self.heartbeat.beat()
                self.manager.lease_ok.set()  # a fetch held back since an outage goes on
                self.manager.tend_quarantine(self._client)
                outage.ok()
            except redis.RedisError as exc:
                outage.failed(exc)

    def _until_beat(self, seconds: float) -> bool:
        """Wait for the next beat; True once stopping. A failed fetch (an outage) asks for
        one sooner: fetching waits for the lease to be renewed."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.stopping.wait(min(left, BEAT_RETRY)):
                return True
            if not self.manager.lease_ok.is_set():
                return False
        return False
