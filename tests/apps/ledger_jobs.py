"""Jobs that record every run in a ledger outside the system under test.

The ledger is a hash in another Redis database (``LEDGER_URL``): field = jid, value = runs.
"""

from __future__ import annotations

import os
import threading
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from sidequest import Job

_ledger: redis.Redis | None = None
_lock = threading.Lock()


def ledger() -> redis.Redis:
    """One client for all of a worker's threads. The ledger is the tests' witness, not the
    system under test: a reply that times out on a loaded host (seen once in CI: a new
    connection's HELLO unanswered for 5 s) is tried again rather than failing the job, which
    would send it to a retry the test does not wait for. A retried write that had landed
    shows up as a run counted twice, which the tests catch."""
    global _ledger
    if _ledger is None:
        with _lock:
            if _ledger is None:
                _ledger = redis.Redis.from_url(
                    os.environ["LEDGER_URL"], retry=Retry(ExponentialBackoff(cap=0.5), 3),
                    retry_on_error=[redis.ConnectionError, redis.TimeoutError])
    return _ledger


class Slow(Job):
    name = "tests.Slow"

    def perform(self, seconds: float) -> None:
        ledger().hincrby("started", self.jid, 1)
        time.sleep(seconds)
        ledger().hincrby("done", self.jid, 1)


class Sleeper(Job):
    """Blocks in a C-level sleep far past any shutdown timeout."""

    name = "tests.Sleeper"

    def perform(self, seconds: float) -> None:
        ledger().hincrby("started", self.jid, 1)
        time.sleep(seconds)
        ledger().hincrby("done", self.jid, 1)


class Quick(Job):
    name = "tests.Quick"

    def perform(self, value: object) -> None:
        ledger().hincrby("done", self.jid, 1)
