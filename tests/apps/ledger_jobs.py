"""Jobs that record every run in a ledger outside the system under test.

The ledger is a hash in another Redis database (``LEDGER_URL``): field = jid, value = runs.
"""

from __future__ import annotations

import os
import time

import redis

from sidequest import Job

_ledger: redis.Redis | None = None


def ledger() -> redis.Redis:
    global _ledger
    if _ledger is None:
        _ledger = redis.Redis.from_url(os.environ["LEDGER_URL"])
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
