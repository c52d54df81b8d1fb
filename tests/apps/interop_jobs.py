"""Python twins of the Ruby jobs in tests/interop/ruby/jobs.rb, for the interop suite.

Each class sets ``name`` to the Ruby class name, so a job pushed by either side runs on
either side (InteropBlock keeps a worker of either side busy while the other side's API
and web UI look at it). Runs go to the same ledger as tests/apps/ledger_jobs.py (``LEDGER_URL``,
database 1), in the shape the Ruby classes write:

    HINCRBY done <jid> 1        a completed run
    HSET args <jid> <json>      the arguments exactly as perform received them
    HSET runner <jid> python    which side ran it ("ruby" for the Ruby classes)
    HINCRBY attempts <jid> 1    every start of InteropFlaky, InteropDoomed and InteropBlock
"""

from __future__ import annotations

import json
import time
from typing import Any

from apps.ledger_jobs import ledger
from sidequest import Job

#: The longest InteropBlock waits to be released, so that a broken test cannot hang a worker.
BLOCK_LIMIT = 30.0


class InteropError(Exception):
    """Raised on purpose by the failing jobs."""


def record(jid: str, args: tuple[Any, ...]) -> None:
    pipe = ledger().pipeline(transaction=True)
    pipe.hincrby("done", jid, 1)
    pipe.hset("args", jid, json.dumps(list(args)))
    pipe.hset("runner", jid, "python")
    pipe.execute()


def attempt(jid: str) -> int:
    return int(ledger().hincrby("attempts", jid, 1))


class Record(Job):
    name = "InteropRecord"

    def perform(self, *args: Any) -> None:
        record(self.jid, args)


class Flaky(Job):
    """Fails its first attempt (counted in the ledger, so a retry on either side passes)."""

    name = "InteropFlaky"
    backtrace = True

    def perform(self, *args: Any) -> None:
        if attempt(self.jid) == 1:
            raise InteropError(f"first attempt of {self.jid} fails on purpose")
        record(self.jid, args)


class Parked(Flaky):
    """Fails its first attempt like InteropFlaky, and asks for its retry an hour later, so a
    test that reads the retry set finds it there however long a loaded machine takes (the
    default delay, 15-24 s, can pass while a slow test still looks)."""

    name = "InteropParked"

    @classmethod
    def retry_in(cls, count: int, exc: BaseException, payload: Any) -> float:
        return 3600.0


class Doomed(Job):
    """Always fails; retry = 0 sends it to the dead set at once (push with set(retry=N))."""

    name = "InteropDoomed"
    retry = 0
    backtrace = True

    def perform(self, *args: Any) -> None:
        attempt(self.jid)
        raise InteropError(f"{self.jid} always fails")


class Block(Job):
    """Keeps its worker thread busy until the ledger key ``release`` exists."""

    name = "InteropBlock"

    def perform(self, *args: Any) -> None:
        attempt(self.jid)
        deadline = time.monotonic() + BLOCK_LIMIT
        while not ledger().exists("release") and time.monotonic() < deadline:
            time.sleep(0.01)
        record(self.jid, args)


class BadName(Job):
    """Fails its first attempt with a message holding a lone surrogate, as an error about a
    file name with undecodable bytes does."""

    name = "InteropBadName"
    backtrace = True

    def perform(self, *args: Any) -> None:
        if attempt(self.jid) == 1:
            name = b"rapport-\xe9t\xe9.csv".decode("utf-8", "surrogateescape")
            raise InteropError(f"cannot open {name}")
        record(self.jid, args)


class Windowed(Job):
    """Always fails; pushed from Ruby with ``retry_for``."""

    name = "InteropWindowed"

    def perform(self, *args: Any) -> None:
        attempt(self.jid)
        raise InteropError(f"{self.jid} fails inside its retry window")
